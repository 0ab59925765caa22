import ArgumentParser
import CSedaLoad
import Dispatch
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `seda-nio-httpd`: a minimal SwiftNIO HTTP/1.1 server written for the
/// comparison (the upper bound of what frameworks built on SwiftNIO can do).
/// Serves the seed's 8 KB page (the bytes every baseline serves) at `/` and
/// `/index.html`, keep-alive and pipelining as NIO's HTTP/1.1 pipeline does
/// them; `/bottleneck` burns `--bottleneck-ms` of CPU per request on a
/// `NIOThreadPool` of `--bottleneck-threads` threads, as NIO users offload
/// blocking work, then returns the page.
///
/// Listens on 127.0.0.1 only; prints `seda-nio-httpd: listening on
/// 127.0.0.1:<port>`; stops on SIGINT/SIGTERM.
@main
struct NIOHTTPServer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seda-nio-httpd",
        abstract: "A minimal SwiftNIO HTTP/1.1 server serving the seed's 8 KB page, for the comparison."
    )

    @Option(help: "Port on 127.0.0.1 (0 picks one and prints it).")
    var port: Int = 0

    @Option(help: "Event loops (threads).")
    var threads: Int = 1

    @Option(name: .customLong("bottleneck-ms"), help: "CPU milliseconds burnt per /bottleneck request.")
    var bottleneckMs: Double = 1

    @Option(name: .customLong("bottleneck-threads"), help: "Threads of the NIOThreadPool /bottleneck runs on.")
    var bottleneckThreads: Int = 2

    @Option(help: "Listen backlog.")
    var backlog: Int32 = 4096

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard bottleneckThreads >= 1 else { throw ValidationError("--bottleneck-threads must be at least 1") }
        guard bottleneckMs >= 0 else { throw ValidationError("--bottleneck-ms must be >= 0") }
    }

    func run() throws {
        _ = sload_raise_nofile()  // 10,000 connections need more than the usual soft limit
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let pool = NIOThreadPool(numberOfThreads: bottleneckThreads)
        pool.start()
        let shared = Shared(bottleneckNanos: UInt64(bottleneckMs * 1e6), pool: pool)

        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: true, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(PageHandler(shared: shared))
                }
            }
        let channel = try bootstrap.bind(host: "127.0.0.1", port: port).wait()
        print("seda-nio-httpd: listening on 127.0.0.1:\(channel.localAddress?.port ?? port)")
        fflush(nil)

        // Stop on SIGINT/SIGTERM: close the listener; the main thread then shuts everything down.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let received = Mutex<Int32>(0)
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                received.withLock { $0 = sig }
                channel.close(promise: nil)
            }
            source.resume()
            sources.append(source)
        }
        try channel.closeFuture.wait()
        try group.syncShutdownGracefully()
        try pool.syncShutdownGracefully()
        for s in sources { s.cancel() }
        let sig = received.withLock { $0 }
        let name = sig == SIGTERM ? "Terminated" : "Interrupt"
        FileHandleLite.stderr(
            "seda-nio-httpd: stopped (\(name)): \(shared.connections.load(ordering: .relaxed)) connections, "
                + "\(shared.requests.load(ordering: .relaxed)) requests\n")
    }
}

/// What every connection's handler shares: the page, the pool, the totals.
final class Shared: Sendable {
    let page: ByteBuffer
    let notFound: ByteBuffer
    let bottleneckNanos: UInt64
    let pool: NIOThreadPool
    /// Totals, added to once per connection when it closes (relaxed: read after shutdown).
    let connections = Atomic<Int>(0)
    let requests = Atomic<Int>(0)

    init(bottleneckNanos: UInt64, pool: NIOThreadPool) {
        let bytes = UnsafeRawBufferPointer(start: sload_page(), count: Int(SLOAD_PAGE_SIZE))
        var page = ByteBufferAllocator().buffer(capacity: bytes.count)
        page.writeBytes(bytes)
        self.page = page
        self.notFound = ByteBufferAllocator().buffer(string: "<html><body><h1>404 Not Found</h1></body></html>\n")
        self.bottleneckNanos = bottleneckNanos
        self.pool = pool
    }
}

/// Burns `nanos` of CPU on the calling thread (Haboob's /bottleneck).
func burnCPU(nanos: UInt64) {
    let start = DispatchTime.now().uptimeNanoseconds
    var x: UInt64 = 0x9E37_79B9_7F4A_7C15
    while DispatchTime.now().uptimeNanoseconds &- start < nanos {
        for _ in 0..<64 { x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407 }
    }
    if x == 42 { print("") }  // keeps the loop from being optimised away
}

/// One per connection; runs on its event loop only.
final class PageHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let shared: Shared
    private var head: HTTPRequestHead?
    private var served = 0

    init(shared: Shared) { self.shared = shared }

    func channelActive(context: ChannelHandlerContext) {
        shared.connections.add(1, ordering: .relaxed)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        shared.requests.add(served, ordering: .relaxed)
        served = 0
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
        case .body:
            break
        case .end:
            guard let h = head else { return }
            head = nil
            served += 1
            let path = h.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            if path == "/bottleneck" {
                offload(context: context, head: h)
            } else if path == "/" || path == "/index.html" {
                respond(context: context, head: h, status: .ok, body: shared.page, flush: false)
            } else {
                respond(context: context, head: h, status: .notFound, body: shared.notFound, flush: false)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    private func respond(
        context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, body: ByteBuffer,
        flush: Bool
    ) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/html")
        headers.add(name: "content-length", value: String(body.readableBytes))
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
            promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        if keepAlive {
            context.write(wrapOutboundOut(.end(nil)), promise: nil)
            if flush { context.flush() }
        } else {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in loopBound.value.close(promise: nil) }
        }
    }

    /// The 1 ms of CPU goes to the thread pool; the answer comes back on this loop.
    private func offload(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let nanos = shared.bottleneckNanos
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        shared.pool.runIfActive(eventLoop: context.eventLoop) { burnCPU(nanos: nanos) }
            .whenComplete { _ in
                let (handler, context) = loopBound.value
                handler.respond(context: context, head: head, status: .ok, body: handler.shared.page, flush: true)
            }
    }
}

/// Writes to stderr without Foundation.
enum FileHandleLite {
    static func stderr(_ s: String) {
        var s = s
        s.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }
}
