import Seda

/// The read stage's handler of one worker (the socket layer's replica for
/// its thread): packets go to the parse (called directly, or queued to the
/// parse stage), the peer's end of stream and closes to the worker.
///
/// Thread rules: the worker's thread (a replica per thread, bound).
struct HTTPReadHandler: IOHandler {
    let worker: HTTPWorker
    /// The worker's parse stage (``HTTPPipeline/staged``); nil: fused.
    let parse: Sink<HTTPPacket>?

    func handle(_ batch: inout IOEventBatch) throws {
        for i in 0..<batch.count {
            guard let event = batch[i], let connection = event.connection else { continue }
            switch event.kind {
            case .packet:
                let state = worker.state(of: connection)
                if let parse {
                    if state.closing { continue }
                    let packet = HTTPPacket(batch.take(i)!, state: state)
                    do {
                        try parse.enqueue(packet)
                        state.queuedPackets += 1
                    } catch {
                        worker.shed(state)
                    }
                } else {
                    worker.received(event.bytes, state)
                }
            case .readEOF: worker.peerClosed(connection)
            case .closed: worker.closed(connection)
            default: break
            }
        }
    }
}

/// The parse stage of one worker (``HTTPPipeline/staged``): parse, cache
/// lookup and response writing for the packets the read stage queued.
///
/// Thread rules: bound to the worker's thread.
struct HTTPParseHandler: EventHandler {
    let worker: HTTPWorker

    func handle(_ batch: inout EventBatch<HTTPPacket>) throws {
        batch.forEach { packet in
            packet.state.queuedPackets -= 1
            worker.received(packet.packet.event.bytes, packet.state)
        }
    }
}

/// The reply stage of one worker: responses the stages behind the request
/// path (file read, `/bottleneck`, status) prepared, written in order.
///
/// Thread rules: bound to the worker's thread.
struct HTTPReplyHandler: EventHandler {
    let worker: HTTPWorker

    func handle(_ batch: inout EventBatch<HTTPDeferredRequest>) throws {
        batch.forEach { worker.completed($0) }
    }
}

/// The control stage of one worker: header timers and the drain order.
///
/// Thread rules: bound to the worker's thread.
struct HTTPControlHandler: EventHandler {
    let worker: HTTPWorker

    func handle(_ batch: inout EventBatch<HTTPControlEvent>) throws {
        batch.forEach { event in
            switch event.kind {
            case .headerTimer(let state): worker.headerTimerFired(state)
            case .drain: worker.drain()
            }
        }
    }
}
