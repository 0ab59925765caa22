// libFuzzer target for SedaGnutella's wire format: the framer, the payload
// parsers and validators, the handshake and the routing rules. Built and run
// by script/fuzz-gnutella (swiftc -sanitize=fuzzer,address), compiled
// together with the protocol and routing sources (no Seda runtime needed).
//
// Input: byte 0 picks a chunk size (1...256) and byte 1 a maximum payload;
// the rest is a byte stream as a peer would send it after the handshake.
// Properties checked (a failure traps, which libFuzzer reports):
// - framing in chunks gives the same descriptors as framing in one go, and
//   the same error if any;
// - a descriptor's payload validates exactly when it parses, and a parsed
//   payload encodes back to the very same bytes;
// - the routing core never holds more routes than its tables allow, never
//   forwards at TTL 0, never forwards back to the sender, and keeps
//   TTL + hops within the limit;
// - the handshake machine consumes no more than it was given.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let chunk = Int(data[0]) + 1
    let maxPayload = Int(data[1]) * 64
    let stream = UnsafeRawBufferPointer(start: data + 2, count: size - 2)

    // Framing: whole, then in chunks.
    var whole = DescriptorFramer(maxPayload: maxPayload)
    var oneShot: [[UInt8]] = []
    var oneShotError: FramingError?
    do throws(FramingError) {
        try whole.feed(stream, origin: PeerID(1), now: 0) { oneShot.append($0.bytes) }
    } catch {
        oneShotError = error
    }
    var pieces = DescriptorFramer(maxPayload: maxPayload)
    var chunked: [Descriptor] = []
    var chunkedError: FramingError?
    var at = 0
    while at < stream.count && chunkedError == nil {
        let end = min(stream.count, at + chunk)
        do throws(FramingError) {
            try pieces.feed(UnsafeRawBufferPointer(rebasing: stream[at..<end]), origin: PeerID(1), now: 0) {
                chunked.append($0)
            }
        } catch {
            chunkedError = error
        }
        at = end
    }
    precondition(chunked.map(\.bytes) == oneShot, "chunking changed the descriptors")
    precondition(chunkedError == oneShotError, "chunking changed the error")
    if oneShotError == nil { precondition(whole.isMidDescriptor == pieces.isMidDescriptor) }

    // Payloads: validate ⇔ parse, and parse ∘ encode is the identity.
    for d in chunked {
        precondition(d.payloadLength <= maxPayload)
        let verdict = Payload.validate(type: d.type, bytes: d.payload)
        do throws(PayloadError) {
            let p = try d.parsePayload()
            precondition(verdict == nil, "validate refused what parse accepted")
            precondition(p.encode() == Array(d.payload), "encode(parse(b)) != b for \(d.type)")
        } catch {
            precondition(verdict == error, "validate and parse disagree: \(String(describing: verdict)) vs \(error)")
        }
    }

    // Routing: descriptors from three neighbours, tables of 8, rotations.
    var core = RoutingCore(policy: RoutingPolicy(tableCapacity: 8))
    for (i, framed) in chunked.enumerated() {
        let from = PeerID(UInt64(i % 3 + 1))
        let d = Descriptor(copying: framed.wireBytes, origin: from, receivedAt: 0)
        let decision = core.route(d)
        switch decision {
        case .flood:
            precondition(d.ttl > 0 && Int(d.ttl) + Int(d.hops) <= 7 + 1)
        case .forward(let to):
            precondition(to != from && to != .local && d.ttl > 0)
        case .local, .drop:
            break
        }
        precondition(core.routeCount <= 4 * 8)
        if framed.hops & 0x0f == 0x0f { core.rotate() }
    }

    // The handshake, over the same bytes.
    var h = Handshake(role: data[0] & 1 == 0 ? .accepting : .connecting)
    switch h.feed(stream) {
    case .done(let consumed): precondition(consumed <= stream.count && consumed == h.expected.count)
    case .failed(let offset): precondition(offset < stream.count)
    case .needMore: precondition(stream.count < h.expected.count)
    }
    return 0
}
