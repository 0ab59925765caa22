import AsyncAlgorithms
import Dispatch

// The pipeline as a Swift developer would write it today without Seda. Each
// has 4 queues, like Seda's 4 stages: stage 1's input, which the generator
// feeds synchronously from its plain thread, and one between each pair of
// stages. All are unbounded except AsyncChannel, which is a rendezvous.

extension PipelineBench {
    static var baselines: [PipelineContender] {
        [
            PipelineContender(label: "AsyncStream, 4 tasks", batch: nil, isBaseline: true) {
                AsyncStreamPipeline()
            },
            PipelineContender(label: "AsyncChannel, 4 tasks", batch: nil, isBaseline: true) {
                AsyncChannelPipeline()
            },
            PipelineContender(label: "DispatchQueue, 4 serial", batch: nil, isBaseline: true) {
                DispatchQueuePipeline()
            },
        ]
    }
}

/// (a) Each stage a `Task` iterating its own `AsyncStream` and yielding into
/// the next stage's continuation; the tasks run on the cooperative pool.
final class AsyncStreamPipeline: PipelineUnderTest {
    private let streams = (0..<PipelineBench.stages).map { _ in AsyncStream.makeStream(of: PipelineEvent.self) }
    private let stopped = DispatchGroup()

    func start(sink: PipelineSink) {
        for stage in streams.indices {
            let input = streams[stage].stream
            stopped.enter()
            if stage + 1 < streams.count {
                let output = streams[stage + 1].continuation
                Task { [stopped] in
                    for await event in input {
                        event.touch()
                        output.yield(event)
                    }
                    output.finish()
                    stopped.leave()
                }
            } else {
                Task { [stopped] in
                    for await event in input {
                        event.touch()
                        sink.complete(event)
                    }
                    stopped.leave()
                }
            }
        }
    }

    func submit(_ event: PipelineEvent) {
        streams[0].continuation.yield(event)
    }

    func shutdown() {
        streams[0].continuation.finish()
        stopped.wait()
    }
}

/// (b) Each stage a `Task`, with an `AsyncChannel` between each pair of
/// stages. `AsyncChannel.send` is async, so a plain thread cannot call it:
/// stage 1's input is an `AsyncStream`, the usual bridge from synchronous
/// code, exactly as in (a); the 3 edges between the tasks are channels.
final class AsyncChannelPipeline: PipelineUnderTest {
    private let ingress = AsyncStream.makeStream(of: PipelineEvent.self)
    private let channels = (1..<PipelineBench.stages).map { _ in AsyncChannel<PipelineEvent>() }
    private let stopped = DispatchGroup()

    func start(sink: PipelineSink) {
        let input = ingress.stream, first = channels[0]
        stopped.enter()
        Task { [stopped] in
            for await event in input {
                event.touch()
                await first.send(event)
            }
            first.finish()
            stopped.leave()
        }
        for stage in 1..<PipelineBench.stages {
            let input = channels[stage - 1]
            stopped.enter()
            if stage < channels.count {
                let output = channels[stage]
                Task { [stopped] in
                    for await event in input {
                        event.touch()
                        await output.send(event)
                    }
                    output.finish()
                    stopped.leave()
                }
            } else {
                Task { [stopped] in
                    for await event in input {
                        event.touch()
                        sink.complete(event)
                    }
                    stopped.leave()
                }
            }
        }
    }

    func submit(_ event: PipelineEvent) {
        ingress.continuation.yield(event)
    }

    func shutdown() {
        ingress.continuation.finish()
        stopped.wait()
    }
}

/// (c) 4 serial `DispatchQueue`s: stage i's block handles the event and
/// `async`s stage i+1's block onto queue i+1.
final class DispatchQueuePipeline: PipelineUnderTest {
    private let queues = (0..<PipelineBench.stages).map { DispatchQueue(label: "seda-bench.pipeline.stage\($0 + 1)") }
    private var chain: Chain?

    private final class Chain: Sendable {
        let queues: [DispatchQueue]
        let sink: PipelineSink

        init(queues: [DispatchQueue], sink: PipelineSink) {
            self.queues = queues
            self.sink = sink
        }

        func run(_ stage: Int, _ event: PipelineEvent) {
            event.touch()
            let next = stage + 1
            if next < queues.count {
                queues[next].async { self.run(next, event) }
            } else {
                sink.complete(event)
            }
        }
    }

    func start(sink: PipelineSink) {
        chain = Chain(queues: queues, sink: sink)
    }

    func submit(_ event: PipelineEvent) {
        let chain = chain!
        queues[0].async { chain.run(0, event) }
    }

    func shutdown() {
        for queue in queues { queue.sync {} }  // let the last blocks return
        chain = nil
    }
}

/// No stages: the generator's own thread touches the event 4 times and calls
/// the sink. Not a row; its latency is the harness's floor (the generator's
/// wake-up lag plus the sink), printed under the table.
final class DirectPipeline: PipelineUnderTest {
    private var sink: PipelineSink?

    func start(sink: PipelineSink) { self.sink = sink }

    func submit(_ event: PipelineEvent) {
        for _ in 0..<PipelineBench.stages { event.touch() }
        sink!.complete(event)
    }

    func shutdown() { sink = nil }
}
