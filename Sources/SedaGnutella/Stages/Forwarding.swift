/// Writes descriptors to neighbours and counts what happened: the seed's
/// GnuConnection role (outgoing packets), shared by the router and the
/// logger. The descriptor's bytes go to every link as they are: one buffer,
/// retained by each pending write, no copy per neighbour.
///
/// Thread rules: any thread (links take any thread's writes).
struct Forwarding: Sendable {
    let neighbours: Neighbours
    let statistics: GnutellaStatistics

    /// Sends to every neighbour but the one `d` came from.
    func flood(_ d: Descriptor) {
        statistics.routed(d.type)
        var sent = 0
        for link in neighbours.all where link.peer != d.origin {
            if link.send(d) == .queued { sent += 1 } else { statistics.sendRefused() }
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
