import Seda

/// Writes descriptors to neighbours and counts what happened: the seed's
/// GnuConnection role (outgoing packets), shared by the router and the
/// logger. The descriptor's bytes go to every link as they are: one buffer,
/// retained by each pending write, no copy per neighbour.
///
/// Thread rules: any thread (links take any thread's writes).
struct Forwarding: Sendable {
    let neighbours: Neighbours
    let statistics: GnutellaStatistics

    /// Sends to every neighbour but the one `d` came from. The socket
    /// links go in one multicast (``Connection/write(buffer:retaining:to:)``:
    /// one posted task per other thread, not one per connection); other
    /// links one by one.
    func flood(_ d: Descriptor) {
        statistics.routed(d.type)
        var sent = 0
        let all = neighbours.all
        var sockets: [Connection] = []
        sockets.reserveCapacity(all.count)
        for link in all where link.peer != d.origin {
            if let s = link as? SocketLink {
                sockets.append(s.handle.connection)
            } else if link.send(d) == .queued {
                sent += 1
            } else {
                statistics.sendRefused()
            }
        }
        if !sockets.isEmpty {
            // The links in `all` hold their connections' handles while we write.
            withExtendedLifetime(all) {
                for refused in Connection.write(buffer: d.wireBytes, retaining: d, to: sockets) {
                    if refused == nil { sent += 1 } else { statistics.sendRefused() }
                }
            }
        }
        statistics.forwarded(d.type, sent)
    }

    /// Sends to one neighbour; false if it is no longer connected.
    func forward(_ d: Descriptor, to peer: PeerID) -> Bool {
        guard let link = neighbours.link(peer) else { return false }
        statistics.routed(d.type)
        if link.send(d) == .queued { statistics.forwarded(d.type) } else { statistics.sendRefused() }
        return true
    }
}
