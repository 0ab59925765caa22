import Glibc
import SedaTestSupport
import Testing

@testable import Seda

/// Whether something listens on 127.0.0.1:`port` (a connect succeeds).
private func accepts(_ port: UInt16) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    return connectLoopback(fd, port: port) == 0
}

@Suite("Listener close")
struct ListenerCloseTests {
    @Test(arguments: [PollerBackend.epoll, .ioUring])
    func closingStopsListeningAndKeepsConnections(poller: PollerBackend) throws {
        let runtime = try Runtime(cpuThreads: 2, poller: poller)
        let closed = Counter()
        let server = try SocketServer(runtime: runtime, name: "echo") { _ in
            ZeroCopyEcho(wrongThread: Counter(), closed: closed, runtime: runtime)
        }
        let port = server.port
        let client = TestClient(port: port)
        client.send([1, 2, 3])
        #expect(client.receive(3) == [1, 2, 3])
        server.close()
        var listening = true
        for _ in 0..<5000 where listening {  // closing is posted to each loop: wait for it (bounded)
            listening = accepts(port)
            if listening { usleep(1000) }
        }
        #expect(!listening)
        client.send([4])
        #expect(client.receive(1) == [4])  // accepted connections stay open
        try runtime.shutdown(.drain, timeout: .seconds(10))
    }
}
