import Glibc
import Testing

@testable import Seda
@testable import SedaHTTP

/// Deterministic bytes (xorshift), so a byte out of place shows.
private func noise(_ seed: UInt64, count: Int) -> [UInt8] {
    var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        return UInt8(truncatingIfNeeded: x)
    }
}

private func writeFile(_ path: String, _ bytes: [UInt8]) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    precondition(fd >= 0, "open \(path)")
    if !bytes.isEmpty { _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } }
    close(fd)
}

/// Whether any descriptor of the process is open on a file under `dir`.
private func descriptorOpen(under dir: String) -> Bool {
    guard let d = opendir("/proc/self/fd") else { return false }
    defer { closedir(d) }
    var buf = [CChar](repeating: 0, count: 4096)
    while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        let n = readlink("/proc/self/fd/\(name)", &buf, buf.count - 1)
        if n > 0 {
            buf[n] = 0
            let target = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            if target.hasPrefix(dir + "/") { return true }
        }
    }
    return false
}

/// A document root served through a file stage on `engine`; nil (skipped)
/// where the kernel refuses the engine.
private struct DiskSite {
    let tree = TempTree()
    let harness: Harness
    let disk: FileStage
    let small = noise(1, count: 100)
    /// Three read requests and a bit (diskReadBytes 4096).
    let multi = noise(2, count: 3 * 4096 + 123)

    init?(engine: DiskEngine) throws {
        writeFile("\(tree.path)/small.bin", small)
        writeFile("\(tree.path)/multi.bin", multi)
        writeFile("\(tree.path)/empty.txt", [])
        var c = HTTPServerConfiguration.forDirectory(tree.path)
        c.diskEngine = engine
        c.diskReadBytes = 4096
        harness = try Harness(c)
        disk = try #require(harness.site.disk)
        if disk.engine != engine {
            print("the \(engine.name) engine is unavailable here (fell back to \(disk.engine.name)); skipped")
            return nil
        }
    }

    func get(_ path: String) -> Response? {
        let (out, _) = harness.exchange([SedaHTTPTests.get(path)])
        return responses(out.bytes)?.first
    }

    /// Every file the stage adopted was closed, and no descriptor is left on the tree.
    func allClosed() -> Bool {
        eventually {
            disk.statistics.filesOpen == 0 && disk.statistics.pending == 0 && !descriptorOpen(under: tree.path)
        }
    }
}

@Suite(.serialized) struct FileReadDiskTests {
    @Test(arguments: [DiskEngine.ioUring, .libaio, .threads])
    func aMissIsReadThroughTheFileStageByteForByte(engine: DiskEngine) throws {
        guard let s = try DiskSite(engine: engine) else { return }
        let small = try #require(s.get("/small.bin"))
        #expect(small.status == 200)
        #expect(small.body == s.small)  // 100 bytes: a short dump if not
        let multi = try #require(s.get("/multi.bin"))
        #expect(multi.status == 200)
        let multiSame = multi.body == s.multi  // no 12 KB dump on failure
        #expect(multiSame, "multi.bin: \(multi.body.count) bytes, not its content")
        #expect(multi.header("Content-Length") == "\(s.multi.count)")
        let empty = try #require(s.get("/empty.txt"))
        #expect(empty.status == 200)
        #expect(empty.body.isEmpty)
        #expect(empty.header("Content-Length") == "0")
        // Read by the file stage (the empty file needs no read), then cached.
        #expect(s.disk.statistics.bytesRead == UInt64(s.small.count + s.multi.count))
        #expect(s.disk.statistics.failed == 0)
        let now = s.harness.runtime.clock.now
        for path in ["/small.bin", "/multi.bin", "/empty.txt"] {
            guard case .hit = s.harness.site.cache.lookup(path, now: now) else {
                Issue.record("\(path) is not cached")
                continue
            }
        }
        let again = try #require(s.get("/multi.bin"))
        let againSame = again.body == s.multi
        #expect(againSame)
        #expect(s.harness.processor.counters.snapshot.deferred == 3)  // the last one a hit
        #expect(s.allClosed())
    }

    @Test(arguments: [DiskEngine.ioUring, .libaio, .threads])
    func anIOErrorIs500AndNothingIsCached(engine: DiskEngine) throws {
        guard let s = try DiskSite(engine: engine) else { return }
        // The second of multi.bin's four reads fails.
        try s.disk.injectFault([.read], nth: 2, errno: EIO)
        let failed = try #require(s.get("/multi.bin"))
        #expect(failed.status == 500)
        #expect(s.disk.statistics.failed == 1)
        guard case .miss = s.harness.site.cache.lookup("/multi.bin", now: s.harness.runtime.clock.now) else {
            Issue.record("a failed read was cached")
            return
        }
        #expect(s.allClosed())
        // The fault is spent: the next request reads the file.
        try s.disk.injectFault([], nth: 0, errno: 0)
        let ok = try #require(s.get("/multi.bin"))
        #expect(ok.status == 200)
        let okSame = ok.body == s.multi
        #expect(okSame)
        #expect(s.allClosed())
    }

    @Test(arguments: [DiskEngine.ioUring, .libaio, .threads])
    func aShortReadIs500AndTheFileIsClosed(engine: DiskEngine) throws {
        // The reader on its own, told the file is longer than it is (as if
        // it shrank between the stat and the read).
        let tree = TempTree()
        let path = "\(tree.path)/f"
        writeFile(path, noise(3, count: 3000))
        let runtime = try Runtime(cpuThreads: 1)
        defer { try? runtime.shutdown(.drain, timeout: .seconds(10)) }
        let replies = ReplyCollector()
        let replySink = try runtime.addStage("reply", handler: replies)
        let stage = try FileStage(runtime: runtime, name: "disk", engine: engine)
        guard stage.engine == engine else { return }
        let jobs = FileReadJobs()
        let done = try runtime.addFileEventStage(
            "done", options: StageOptions(threadManager: .dedicated(threads: 1)),
            handler: FileReadCompletion(jobs: jobs))
        let reader = FileDiskReader(stage: stage, sink: done, readBytes: 8192, jobs: jobs)
        let cache = PageCache()
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        var st = stat()
        #expect(fstat(fd, &st) == 0)
        let request = HTTPDeferredRequest(
            work: .file, session: HTTPSession(), path: Array("/f".utf8),
            query: nil, isHead: false, keepAlive: true, conditions: HTTPConditions(), sequence: 0, stalePage: nil,
            replyTo: replySink)
        let started = reader.start(
            FileReadJob.Pending(
                request: request, descriptor: fd, body: HTTPBuffer(count: 4000), contentType: "text/plain",
                identity: FileIdentity(st), cache: cache, clock: runtime.clock))
        #expect(started)
        let reply = try #require(replies.next())
        #expect(reply === request)
        guard case .status(let status) = reply.result else {
            Issue.record("\(reply.result) is not a status")
            return
        }
        #expect(status == .internalServerError)
        #expect(cache.statistics.entries == 0)
        #expect(jobs.count == 0)
        #expect(eventually { stage.statistics.filesOpen == 0 && !descriptorOpen(under: tree.path) })
        try stage.destroy()
    }

    @Test func aDestroyedFileStageLeavesTheReadToThePool() throws {
        guard let s = try DiskSite(engine: .threads) else { return }
        try s.disk.destroy()
        let served = try #require(s.get("/multi.bin"))
        #expect(served.status == 200)
        let same = served.body == s.multi
        #expect(same)
        #expect(s.disk.statistics.bytesRead == 0)
        #expect(!descriptorOpen(under: s.tree.path))
    }

    @Test func theFileStageAndRuntimeGoWithTheSiteAfterShutdown() throws {
        guard let s = try DiskSite(engine: .ioUring) else { return }
        weak let disk: FileStage? = s.disk
        weak let runtime: Runtime? = s.harness.runtime
        do {
            let served = try #require(s.get("/multi.bin"))
            #expect(served.status == 200)
        }
        _ = consume s  // the harness shuts the runtime down, then lets go
        #expect(disk == nil)
        #expect(runtime == nil)
    }

    @Test func theBuiltInSiteMakesNoFileStage() throws {
        let h = try Harness()
        #expect(h.site.disk == nil)
    }

    @Test func aBadReadSizeIsAConfigurationError() {
        var c = HTTPServerConfiguration.forDirectory("/tmp")
        c.diskReadBytes = 0
        #expect(throws: HTTPConfigurationError.self) { try c.validate() }
    }
}
