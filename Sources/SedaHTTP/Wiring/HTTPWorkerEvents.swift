import Seda

/// Received bytes on their way from the read stage to the parse stage
/// (``HTTPPipeline/staged``): the packet itself (its buffer, no copy) and
/// its connection's state.
///
/// Thread rules: made by the read stage, handled by the parse stage bound
/// to the same thread; admission controllers may read ``byteCount`` from
/// any thread.
public final class HTTPPacket: SizedEvent, @unchecked Sendable {
    // @unchecked: the state is confined to the owner thread, which is the
    // only one that reads it.
    let packet: TakenIOEvent
    let state: HTTPConnectionState
    /// Bytes received.
    public let byteCount: Int

    init(_ packet: consuming TakenIOEvent, state: HTTPConnectionState) {
        byteCount = packet.event.bytes.count
        self.packet = packet
        self.state = state
    }

    public var sizeInBytes: Int { byteCount }
}

/// What a worker's control stage handles: a connection's header timer, or
/// the server's order to drain (graceful shutdown).
final class HTTPControlEvent: @unchecked Sendable {
    // @unchecked: the state is confined to the owner thread, where the
    // control stage runs.
    enum Kind {
        case headerTimer(HTTPConnectionState)
        case drain
    }
    let kind: Kind
    init(_ kind: Kind) { self.kind = kind }
}
