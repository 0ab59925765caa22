// swift-format-ignore-file
import Glibc
import Testing

@testable import Seda

// The README's Swift examples, kept compiling and running here. When one
// changes, change the other: the code is kept as the README writes it, so
// the formatter leaves this file alone.

private final class Request: Sendable {
    let path: String
    init(path: String) { self.path = path }
}

private struct Parse: EventHandler {
    let next: Sink<Request>
    func handle(_ batch: inout EventBatch<Request>) throws {
        batch.forEach { _ in /* parse */ }
        try batch.forward(to: next)
    }
}

private struct Respond: EventHandler {
    func handle(_ batch: inout EventBatch<Request>) throws {
        for i in 0..<batch.count { if let r = batch.take(i) { _ = r } }
    }
}

private struct Alarms: EventHandler {
    func handle(_ batch: inout EventBatch<StageStateEvent>) throws {}
}

private struct Echo: IOHandler {
    func handle(_ batch: inout IOEventBatch) throws {
        for i in 0..<batch.count where batch[i]?.kind == .packet {
            let connection = batch[i]!.connection!
            try connection.write(packet: batch.take(i)!)   // its own bytes back, no copy
        }
    }
}

private struct Lengths: FileEventHandler {
    func handle(_ batch: inout FileEventBatch) throws {
        batch.forEach { done in print(done.operation, done.error.map { "\($0)" } ?? "\(done.count) bytes") }
    }
}

@Suite("README examples")
struct ReadmeExamplesTests {
    @Test func eventQueue() throws {
        let queue = try EventQueue<Request>(capacity: 1024)
        do {
            try queue.enqueue(Request(path: "/1"))
        } catch SedaError.full {
            Issue.record("not full yet")
        }
        try queue.enqueue(contentsOf: [Request(path: "/2"), Request(path: "/3")])
        let batch = try queue.dequeue(max: 64)
        #expect(batch.count == 3)
        #expect(throws: SedaError.timedOut) {   // the queue is empty now
            _ = try queue.dequeue(max: 64, timeout: .milliseconds(10))
        }
        queue.close()
    }

    @Test func stages() throws {
        let runtime = try Runtime()
        let respond = try runtime.addStage("respond", handler: Respond(),
                                           options: StageOptions(threadManager: .dedicated(threads: 4)))
        let parse = try runtime.addStage("parse", handler: Parse(next: respond))
        try parse.enqueue(Request(path: "/"))
        #expect(runtime.snapshot().graphviz().contains("digraph"))
        try runtime.shutdown(.drain)
    }

    @Test func loadConditioning() throws {
        let runtime = try Runtime()
        let alarms = try runtime.addStage("alarms", handler: Alarms())
        let handler = Respond()
        let cleanupTick = Request(path: "cleanup"), request = Request(path: "/")
        let rtc = ResponseTimeController<Request>(target: .milliseconds(50))
        let sink = try runtime.addStage("work", handler: handler,
            options: StageOptions(threadManager: .dedicated(threads: 8, maxThreads: 16),
                                  discipline: .codel(),
                                  pauseWhenDownstreamClogged: false),
            admission: AdmissionChain<Request>(QueueThreshold<Request>(1000), rtc))
        try sink.enqueueControl(cleanupTick)
        try sink.enqueue(request, timeout: .milliseconds(10))
        let governor = try ThreadGovernor(runtime: runtime)
        try governor.govern("work"); try governor.start()
        try runtime.watch(stage: "work", notify: alarms)
        governor.stop()
        try runtime.shutdown()
    }

    @Test func sockets() throws {
        let runtime = try Runtime(cpuThreads: 2)
        let server = try SocketServer(runtime: runtime, name: "echo", port: 0) { _ in Echo() }
        let client = TestClient(port: server.port)
        client.send(Array("ping".utf8))
        #expect(client.receive(4) == Array("ping".utf8))
        server.close()
        try runtime.shutdown(.drain, timeout: .seconds(10))
    }

    @Test func asyncDisk() throws {
        let path = "/tmp/seda-readme-\(getpid()).txt"
        let fd = Glibc.open(path, O_CREAT | O_TRUNC | O_WRONLY, 0o644)
        #expect(fd >= 0)
        #expect(Glibc.write(fd, "hello, disk", 11) == 11)
        Glibc.close(fd)
        defer { unlink(path) }
        let runtime = try Runtime(cpuThreads: 2)
        let disk = try FileStage(runtime: runtime, name: "disk")   // .ioUring, .libaio, .threads or SEDA_DISK
        let done = try runtime.addFileEventStage("disk-done", handler: Lengths())
        try disk.open(path, sink: .callback { opened in              // open(2) runs on the stage's pool
            try? opened.event.file?.read(at: 0, count: 4096, sink: .stage(done))  // done.bytes: no copy
        })
        // The open and the read complete (a hang guard, not a timing assertion).
        var stats = disk.statistics
        for _ in 0..<10_000 where stats.bytesRead < 11 {
            usleep(1000)
            stats = disk.statistics
        }
        #expect(stats.bytesRead == 11)
        try disk.destroy()
        try runtime.shutdown(.drain, timeout: .seconds(10))
    }
}
