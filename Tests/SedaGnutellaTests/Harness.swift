import Glibc
import Seda
import Testing

@testable import SedaGnutella

/// Waits for a condition that the stages will make true. A liveness
/// guard, not a timing assertion: 20 s is far past any honest delay.
func waitUntil(_ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ condition: () -> Bool) {
    let deadline = SedaClock.monotonic.now + 20_000_000_000
    while !condition() {
        if SedaClock.monotonic.now > deadline {
            Issue.record("gave up waiting for \(what)", sourceLocation: sourceLocation)
            return
        }
        usleep(500)
    }
}

/// Nodes of an in-process network in one runtime on a manual clock: time
/// moves only when a test says (timers are polled by hand).
final class Harness: @unchecked Sendable {
    // @unchecked: used by one test thread.
    let clock = SedaClock.manual()
    let runtime: Runtime
    let timers: Timers
    let network: InProcessNetwork
    var nodes: [String: GnutellaNode] = [:]
    var connectors: [String: any PeerConnector] = [:]
    var addresses: [String: PeerAddress] = [:]

    init(options: InProcessNetwork.Options = .init()) throws {
        runtime = try Runtime(cpuThreads: 2, clock: clock)
        timers = try Timers(clock: clock, startThread: false)
        network = InProcessNetwork(options: options)
    }

    @discardableResult
    func node(_ name: String, port: UInt16, _ configure: (inout GnutellaConfiguration) -> Void = { _ in }) throws
        -> GnutellaNode
    {
        var c = GnutellaConfiguration()
        c.stagePrefix = name + "-"
        configure(&c)
        let node = try GnutellaNode(runtime: runtime, timers: timers, configuration: c)
        let address = PeerAddress(host: IPv4Address(10, 0, 0, UInt8(nodes.count + 1)), port: port)
        let connector = network.attach(address, server: node.serverSink!)
        try node.start(connector: connector)
        nodes[name] = node
        connectors[name] = connector
        addresses[name] = address
        return node
    }

    /// `a` dials `b`; returns once both have finished the handshake.
    func link(_ a: String, _ b: String) {
        let na = nodes[a]!, nb = nodes[b]!
        let (ca, cb) = (na.neighbours.count, nb.neighbours.count)
        connectors[a]!.connect(to: addresses[b]!)
        waitUntil("\(a) and \(b) handshaken") { na.neighbours.count == ca + 1 && nb.neighbours.count == cb + 1 }
    }

    /// A probe connected to `name` that has completed the handshake.
    func probe(_ name: String) throws -> Probe {
        let node = nodes[name]!
        let before = node.statistics.snapshot().handshakes
        let p = try network.probe(connectingTo: addresses[name]!)
        p.send(GnutellaWire.connectRequest)
        waitUntil("the probe's handshake") {
            p.received.count >= GnutellaWire.connectReply.count && node.statistics.snapshot().handshakes > before
        }
        #expect(Array(p.received.prefix(GnutellaWire.connectReply.count)) == GnutellaWire.connectReply)
        return p
    }

    /// Moves time on by `d` and fires the timers due.
    func advance(_ d: Duration) throws {
        try clock.advance(by: d)
        timers.poll()
    }

    func shutdown() throws {
        for n in nodes.values { n.stop() }
        try runtime.shutdown(.drain, timeout: .seconds(20))
    }
}

extension Probe {
    /// Descriptors received so far (after the handshake reply).
    var got: [Descriptor] { descriptors() ?? [] }

    /// Waits until `n` descriptors have arrived.
    func waitFor(_ n: Int, sourceLocation: SourceLocation = #_sourceLocation) -> [Descriptor] {
        waitUntil("\(n) descriptors at the probe", sourceLocation: sourceLocation) { got.count >= n }
        return got
    }
}

/// Waits until every stage of the runtime is idle with empty queues (all
/// work accepted so far has been processed).
func settle(_ runtime: Runtime) {
    var stable = 0
    var last: [UInt64] = []
    waitUntil("the stages to go idle") {
        let s = runtime.snapshot()
        let idle = s.stages.allSatisfy {
            $0.queueLength == 0 && $0.enqueued == $0.processed + $0.dropped + $0.handedBack
        }
        let counts = s.stages.map(\.processed)
        stable = idle && counts == last ? stable + 1 : 0
        last = counts
        return stable >= 3
    }
}
