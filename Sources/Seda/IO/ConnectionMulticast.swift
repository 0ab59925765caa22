import CSedaCore

extension Connection {
    /// Queues the same `buffer` without copying it on every connection of
    /// `connections` (a flood), as ``write(buffer:retaining:)`` on each,
    /// but the writes for the connections of each other thread reach that
    /// thread together, as one posted task (one allocation and at most one
    /// wake per thread, not per connection). `owner` is retained once per
    /// accepted write and released as each one's bytes are sent or its
    /// connection dies; the buffer must stay valid and unchanged until then.
    ///
    /// - Returns: per connection, in order, nil when the write was accepted,
    ///   else why it was refused (``SedaError/closed``;
    ///   `.system(errno: ENOBUFS)` past the hard limit with
    ///   ``ClogPolicy/notify``; `.system(errno: ENOMEM)`). A refused write
    ///   holds no reference to `owner`.
    ///
    /// Thread rules: any thread; each connection's writes keep the order
    /// of the calling thread's calls.
    public static func write(
        buffer: UnsafeRawBufferPointer, retaining owner: AnyObject, to connections: [Connection]
    ) -> [SedaError?] {
        let n = connections.count
        guard n > 0 else { return [] }
        let pointers: [OpaquePointer?] = connections.map { $0.pointer }
        // One reference per write, taken before any callback may run.
        for _ in 0..<n { _ = Unmanaged.passRetained(owner) }
        let ctx = Unmanaged.passUnretained(owner).toOpaque()
        var results = [Int32](repeating: 0, count: n)
        let r = pointers.withUnsafeBufferPointer { p in
            results.withUnsafeMutableBufferPointer { out in
                seda_conn_write_multi(
                    p.baseAddress, n, buffer.baseAddress, buffer.count, releaseMulticastOwner, ctx, out.baseAddress)
            }
        }
        if r < 0 {
            for _ in 0..<n { Unmanaged<AnyObject>.fromOpaque(ctx).release() }
            return Array(repeating: SedaError(code: r), count: n)
        }
        return results.map { code in
            guard code < 0 else { return nil }
            Unmanaged<AnyObject>.fromOpaque(ctx).release()
            return SedaError(code: code)
        }
    }
}

// A plain C function (no actor): the owner loop's thread calls it.
private let releaseMulticastOwner: @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer?, Int32) -> Void = {
    ctx, _, _ in
    Unmanaged<AnyObject>.fromOpaque(ctx!).release()
}
