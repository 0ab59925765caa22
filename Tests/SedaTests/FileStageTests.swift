import Glibc
import Testing

@testable import Seda

// MARK: - Helpers

/// What a test keeps of a completion (copied out of the event in the handler).
struct FileCompletion: Sendable {
    let operation: FileOperation
    let result: Int64
    let error: SedaError?
    let offset: UInt64
    let tag: UInt64
    let bytes: [UInt8]
    let file: AsyncFile?
    /// The completion's place in its sink's delivery order.
    let order: Int
}

/// Collects completions (from a stage's handler or a callback sink) and
/// lets the test wait for a number of them.
final class FileCollector: FileEventHandler, @unchecked Sendable {
    // @unchecked: all state is behind the lock.
    private let state = Lock<[FileCompletion]>([])

    func record(_ e: FileEvent) {
        let file = e.operation == .open ? e.file : nil
        state.withLock {
            $0.append(
                FileCompletion(
                    operation: e.operation, result: e.result, error: e.error, offset: e.offset, tag: e.tag,
                    bytes: Array(e.bytes), file: file, order: $0.count))
        }
    }

    func handle(_ batch: inout FileEventBatch) throws {
        batch.forEach { record($0) }
    }

    var all: [FileCompletion] { state.withLock { $0 } }

    /// Waits (at most 60 s, so that a lost completion fails rather than
    /// hangs) until `n` completions arrived; returns what arrived.
    @discardableResult
    func wait(for n: Int) -> [FileCompletion] {
        waitUntil { self.state.withLock { $0.count } >= n }
        return all
    }

    /// The completion tagged `tag` (waiting for it).
    func completion(tagged tag: UInt64) -> FileCompletion? {
        waitUntil { self.state.withLock { $0.contains { $0.tag == tag } } }
        return all.first { $0.tag == tag }
    }
}

/// Polls `condition` every millisecond for at most 60 s (a bound against
/// hangs, not a timing assertion).
func waitUntil(_ condition: () -> Bool) {
    for _ in 0..<60_000 {
        if condition() { return }
        usleep(1000)
    }
}

/// A fresh directory on /tmp (a real file system here: ext4 takes O_DIRECT),
/// removed with its files by `body`'s end.
func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    var template = Array("/tmp/seda-file-XXXXXX".utf8CString)
    let dir = template.withUnsafeMutableBufferPointer { buf -> String? in
        guard let p = mkdtemp(buf.baseAddress!) else { return nil }
        return String(cString: p)
    }
    guard let dir else { throw SedaError.system(errno: errno) }
    defer {
        if let d = opendir(dir) {
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) {
                    String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
                }
                if name != "." && name != ".." {
                    let path = "\(dir)/\(name)"
                    if unlink(path) != 0 { rmdir(path) }
                }
            }
            closedir(d)
        }
        rmdir(dir)
    }
    return try body(dir)
}

/// Deterministic bytes: block `i`'s content.
func pattern(_ i: Int, count: Int) -> [UInt8] {
    var x = UInt64(truncatingIfNeeded: i) &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        return UInt8(truncatingIfNeeded: x)
    }
}

/// A small xorshift generator for random offsets (seeded: reproducible).
struct TestRandom {
    var x: UInt64
    mutating func next(_ bound: Int) -> Int {
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        return Int(x % UInt64(bound))
    }
}

/// Whether any descriptor of the process is open on `path`.
func descriptorOpen(on path: String) -> Bool {
    guard let d = opendir("/proc/self/fd") else { return false }
    defer { closedir(d) }
    var buf = [CChar](repeating: 0, count: 4096)
    while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        let n = readlink("/proc/self/fd/\(name)", &buf, buf.count - 1)
        if n > 0 {
            buf[n] = 0
            if buf.withUnsafeBufferPointer({ String(cString: $0.baseAddress!) }) == path { return true }
        }
    }
    return false
}

/// A runtime, a file stage on `engine` and a collecting sink stage; nil (the
/// test is skipped for this engine) when the kernel refused the engine and
/// the stage fell back to another.
struct FileRig {
    let runtime: Runtime
    let stage: FileStage
    let sink: FileEventStage
    let collector: FileCollector

    init?(engine: DiskEngine, name: String, threads: Int = 2, options: FileStageOptions = FileStageOptions())
        throws
    {
        runtime = try Runtime(cpuThreads: threads)
        stage = try FileStage(runtime: runtime, name: name, engine: engine, options: options)
        if stage.engine != engine {
            print("\(name): the \(engine.name) engine is unavailable here (fell back to \(stage.engine.name)); skipped")
            try? stage.destroy()
            try? runtime.shutdown(.handBack)
            return nil
        }
        collector = FileCollector()
        sink = try runtime.addFileEventStage("\(name)-done", handler: collector)
    }

    /// Opens `path` and waits for the file (nil with `error` set on failure).
    func open(
        _ path: String, access: FileAccess = .readWrite, options: FileOpenOptions = [.create, .truncate],
        permissions: mode_t = 0o644, tag: UInt64
    ) throws -> (AsyncFile?, SedaError?) {
        try stage.open(path, access: access, options: options, permissions: permissions, sink: .stage(sink), tag: tag)
        let c = collector.completion(tagged: tag)
        #expect(c?.operation == .open)
        return (c?.file, c?.error)
    }

    func finish() {
        try? stage.destroy()
        try? runtime.shutdown(.drain)
    }
}

let fileEngines: [DiskEngine] = [.ioUring, .libaio, .threads]

// MARK: - Tests

@Suite("FileStage")
struct FileStageTests {
    @Test func engineNamesRoundTrip() {
        for e in DiskEngine.allCases {
            #expect(DiskEngine(name: e.name) == e)
        }
        #expect(DiskEngine(name: "io_uring") == .ioUring)
        #expect(DiskEngine(name: "default") == .automatic)
        #expect(DiskEngine(name: "aio") == nil)
    }

    @Test func badOptionsAreRefused() throws {
        let rt = try Runtime(cpuThreads: 1)
        defer { try? rt.shutdown(.handBack) }
        #expect(throws: SedaError.self) { try FileStage(runtime: rt, name: "") }
        #expect(throws: SedaError.self) {
            try FileStage(runtime: rt, name: "fs", options: FileStageOptions(queueDepth: 5000))
        }
        #expect(throws: SedaError.self) {
            try FileStage(runtime: rt, name: "fs", options: FileStageOptions(threads: 8, maxThreads: 2))
        }
        #expect(throws: SedaError.self) {
            try FileStage(runtime: rt, name: "fs", options: FileStageOptions(homeThread: 1))
        }
        let fs = try FileStage(runtime: rt, name: "fs", options: FileStageOptions(homeThread: 0))
        #expect(fs.homeThread == 0)
        #expect(fs.engine != .automatic)
        #expect(throws: SedaError.alreadyExists) { try FileStage(runtime: rt, name: "fs") }
        try fs.destroy()
        try fs.destroy()  // twice does nothing
        #expect(throws: SedaError.closed) {
            try fs.open("/nonexistent", sink: .callback { _ in })
        }
    }

    /// Writes 64 blocks with every write in flight at once, then reads random
    /// ranges back (all in flight), across the end of the file too.
    @Test(arguments: fileEngines)
    func writeThenReadBackRandomOffsets(engine: DiskEngine) throws {
        guard let rig = try FileRig(engine: engine, name: "rw-\(engine.name)") else { return }
        defer { rig.finish() }
        try withTemporaryDirectory { dir in
            let path = "\(dir)/data"
            let (opened, err) = try rig.open(path, options: [.create, .truncate, .direct], tag: 1)
            #expect(err == nil)
            let file = try #require(opened)
            #expect(file.engine == engine)
            if engine == .libaio { #expect(file.isDirect) }
            let unit = file.alignment
            let block = 4096
            let blocks = 64
            let size = block * blocks
            var expected = [UInt8]()
            for i in 0..<blocks {
                let bytes = pattern(i, count: block)
                expected += bytes
                try file.write(at: UInt64(i * block), bytes: bytes, sink: .stage(rig.sink), tag: 100 + UInt64(i))
            }
            let writes = rig.collector.wait(for: 1 + blocks).filter { $0.operation == .write }
            #expect(writes.count == blocks)
            for w in writes {
                #expect(w.result == Int64(block), "write at \(w.offset): \(String(describing: w.error))")
            }

            // Random reads, aligned to the file's unit (1 when buffered).
            var rng = TestRandom(x: 0x5eda + UInt64(unit))
            var asked: [UInt64: (offset: Int, count: Int)] = [:]
            let reads = 200
            for r in 0..<reads {
                let offset = rng.next(size / unit + 2) * unit  // up to past the end
                let count = (1 + rng.next(3 * block / unit)) * unit
                let tag = 10_000 + UInt64(r)
                asked[tag] = (offset, count)
                try file.read(at: UInt64(offset), count: count, sink: .stage(rig.sink), tag: tag)
            }
            let all = rig.collector.wait(for: 1 + blocks + reads)
            let readCompletions = all.filter { $0.operation == .read }
            #expect(readCompletions.count == reads)
            for c in readCompletions {
                let (offset, count) = asked[c.tag]!
                let want = offset >= size ? [] : Array(expected[offset..<min(offset + count, size)])
                #expect(c.error == nil)
                #expect(c.offset == UInt64(offset))
                #expect(c.bytes == want, "read \(count) at \(offset): \(c.bytes.count) bytes")
            }

            try file.flush(dataOnly: true, sink: .stage(rig.sink), tag: 2)
            #expect(rig.collector.completion(tagged: 2)?.operation == .flushData)
            #expect(rig.collector.completion(tagged: 2)?.result == 0)
            try file.close(sink: .stage(rig.sink), tag: 3)
            let closed = rig.collector.completion(tagged: 3)
            #expect(closed?.operation == .close)
            #expect(closed?.result == 0)
            #expect(throws: SedaError.system(errno: EBADF)) {
                try file.read(at: 0, count: unit, sink: .stage(rig.sink))
            }
            #expect(!descriptorOpen(on: path))
            waitUntil { rig.stage.statistics.eventsOutstanding == 0 && rig.stage.statistics.buffersOutstanding == 0 }
            let stats = rig.stage.statistics
            #expect(stats.filesOpen == 0)
            #expect(stats.eventsOutstanding == 0)
            #expect(stats.buffersOutstanding == 0)
            #expect(stats.bytesWritten == UInt64(size))
            #expect(stats.pending == 0)
        }
    }

    /// A buffer read from the file is written back elsewhere without a copy:
    /// taken out of the read's completion, in a callback sink.
    @Test(arguments: fileEngines)
    func pooledBufferTravelsFromReadToWrite(engine: DiskEngine) throws {
        guard let rig = try FileRig(engine: engine, name: "pool-\(engine.name)") else { return }
        defer { rig.finish() }
        try withTemporaryDirectory { dir in
            let (opened, _) = try rig.open("\(dir)/data", tag: 1)
            let file = try #require(opened)
            let block = 4096
            let buffer = try rig.stage.allocateBuffer(count: block)
            #expect(Int(bitPattern: buffer.bytes.baseAddress!) % 4096 == 0)
            let bytes = pattern(7, count: block)
            buffer.bytes.copyBytes(from: bytes)
            try file.write(at: 0, buffer: buffer, sink: .stage(rig.sink), tag: 2)
            #expect(rig.collector.completion(tagged: 2)?.result == Int64(block))

            // Read block 0 into a pooled buffer; the callback takes the
            // buffer from the event and writes it at block 1.
            let sink = rig.sink
            let chained = Lock<SedaError?>(nil)
            try file.read(
                at: 0, into: try rig.stage.allocateBuffer(count: block),
                sink: .callback { ev in
                    var ev = ev
                    guard let b = ev.takeBuffer() else {
                        chained.withLock { $0 = .invalidArgument }
                        return
                    }
                    do throws(SedaError) {
                        try file.write(at: UInt64(block), buffer: b, sink: .stage(sink), tag: 3)
                    } catch {
                        chained.withLock { $0 = error }
                    }
                })
            #expect(rig.collector.completion(tagged: 3)?.result == Int64(block))
            #expect(chained.withLock { $0 } == nil)
            try file.read(at: UInt64(block), count: block, sink: .stage(rig.sink), tag: 4)
            #expect(rig.collector.completion(tagged: 4)?.bytes == bytes)
            try file.close(sink: .stage(rig.sink), tag: 5)
            #expect(rig.collector.completion(tagged: 5)?.result == 0)
            waitUntil { rig.stage.statistics.buffersOutstanding == 0 }
            #expect(rig.stage.statistics.buffersOutstanding == 0)
        }
    }

    @Test(arguments: fileEngines)
    func endOfFileIsAShortRead(engine: DiskEngine) throws {
        guard let rig = try FileRig(engine: engine, name: "eof-\(engine.name)") else { return }
        defer { rig.finish() }
        try withTemporaryDirectory { dir in
            let (opened, _) = try rig.open("\(dir)/data", tag: 1)
            let file = try #require(opened)
            let unit = file.alignment
            // The file is 1.5 units long when buffered, 1 unit when direct.
            let size = unit == 1 ? 6000 : unit
            let content = pattern(3, count: size)
            try file.write(at: 0, bytes: content, sink: .stage(rig.sink), tag: 2)
            #expect(rig.collector.completion(tagged: 2)?.result == Int64(size))
            let asked = unit == 1 ? 8192 : 2 * unit
            try file.read(at: 0, count: asked, sink: .stage(rig.sink), tag: 3)
            let short = rig.collector.completion(tagged: 3)
            #expect(short?.result == Int64(size))
            #expect(short?.bytes == content)
            try file.read(at: UInt64(size), count: unit == 1 ? 100 : unit, sink: .stage(rig.sink), tag: 4)
            let atEnd = rig.collector.completion(tagged: 4)
            #expect(atEnd?.result == 0)
            #expect(atEnd?.error == nil)
            #expect(atEnd?.bytes.isEmpty == true)
            try file.close(sink: .stage(rig.sink), tag: 5)
            #expect(rig.collector.completion(tagged: 5)?.result == 0)
        }
    }

    @Test(arguments: fileEngines)
    func openErrorsAreCompletions(engine: DiskEngine) throws {
        guard let rig = try FileRig(engine: engine, name: "err-\(engine.name)") else { return }
        defer { rig.finish() }
        try withTemporaryDirectory { dir in
            let (missing, enoent) = try rig.open("\(dir)/missing", access: .readOnly, options: [], tag: 1)
            #expect(missing == nil)
            #expect(enoent == .notFound)
            let (directory, eisdir) = try rig.open(dir, access: .readWrite, options: [], tag: 2)
            #expect(directory == nil)
            #expect(eisdir == .system(errno: EISDIR))
            let (_, eexist) = try rig.open("\(dir)/missing", options: [.create], tag: 3)
            #expect(eexist == nil)
            let (_, exists) = try rig.open("\(dir)/missing", options: [.create, .exclusive], tag: 4)
            #expect(exists == .alreadyExists)
            if geteuid() == 0 {
                // Root opens any file: the kernel's EACCES comes from the
                // stage's fault hook instead, through the same completion path.
                print("EACCES: running as root, which may open any file; injected instead")
                try rig.stage.injectFault([.open], nth: 1, errno: EACCES)
                let (none, eacces) = try rig.open("\(dir)/missing", access: .readOnly, options: [], tag: 5)
                #expect(none == nil)
                #expect(eacces == .system(errno: EACCES))
            } else {
                let locked = "\(dir)/locked"
                let fd = Glibc.open(locked, O_CREAT | O_WRONLY, 0o000)
                #expect(fd >= 0)
                Glibc.close(fd)
                let (none, eacces) = try rig.open(locked, access: .readOnly, options: [], tag: 5)
                #expect(none == nil)
                #expect(eacces == .system(errno: EACCES))
            }
            #expect(rig.stage.statistics.filesOpen <= 1)
        }
    }

    /// An I/O error (EIO on a read, ENOSPC on a write, from the stage's
    /// fault hook) is the completion's error; the file carries on.
    @Test(arguments: fileEngines)
    func ioErrorsAreCompletions(engine: DiskEngine) throws {
        guard let rig = try FileRig(engine: engine, name: "eio-\(engine.name)") else { return }
        defer { rig.finish() }
        try withTemporaryDirectory { dir in
            let (opened, _) = try rig.open("\(dir)/data", tag: 1)
            let file = try #require(opened)
            let block = 4096
            try rig.stage.injectFault([.write], nth: 1, errno: ENOSPC)
            try file.write(at: 0, bytes: pattern(1, count: block), sink: .stage(rig.sink), tag: 2)
            #expect(rig.collector.completion(tagged: 2)?.error == .noCapacity)  // ENOSPC's case
            try file.write(at: 0, bytes: pattern(1, count: block), sink: .stage(rig.sink), tag: 3)
            #expect(rig.collector.completion(tagged: 3)?.result == Int64(block))
            try rig.stage.injectFault([.read], nth: 1, errno: EIO)
            try file.read(at: 0, count: block, sink: .stage(rig.sink), tag: 4)
            let failed = rig.collector.completion(tagged: 4)
            #expect(failed?.error == .system(errno: EIO))
            #expect(failed?.bytes.isEmpty == true)
            try file.read(at: 0, count: block, sink: .stage(rig.sink), tag: 5)
            #expect(rig.collector.completion(tagged: 5)?.bytes == pattern(1, count: block))
            try file.close(sink: .stage(rig.sink), tag: 6)
            #expect(rig.collector.completion(tagged: 6)?.result == 0)
            #expect(rig.stage.statistics.failed == 2)
        }
    }

    /// A request the stage cannot take throws and delivers nothing.
    @Test(arguments: fileEngines)
    func refusedRequestsThrow(engine: DiskEngine) throws {
        guard let rig = try FileRig(engine: engine, name: "ref-\(engine.name)") else { return }
        defer { rig.finish() }
        try withTemporaryDirectory { dir in
            let (opened, _) = try rig.open("\(dir)/data", options: [.create, .direct], tag: 1)
            let file = try #require(opened)
            #expect(throws: SedaError.invalidArgument) {
                try file.write(at: 0, bytes: [], sink: .stage(rig.sink), tag: 2)
            }
            if file.isDirect && file.alignment > 1 {
                // Misaligned on an O_DIRECT file: refused, never bounced.
                #expect(throws: SedaError.invalidArgument) {
                    try file.read(at: 1, count: file.alignment, sink: .stage(rig.sink), tag: 3)
                }
            }
            try file.close(sink: .stage(rig.sink), tag: 4)
            #expect(rig.collector.completion(tagged: 4)?.result == 0)
            #expect(!rig.collector.all.contains { $0.tag == 2 || $0.tag == 3 })
        }
    }

    /// Close with reads in flight: each read completes (with the right
    /// bytes) or is cancelled, and the close comes last.
    @Test(arguments: fileEngines)
    func closeWithRequestsInFlight(engine: DiskEngine) throws {
        guard let rig = try FileRig(engine: engine, name: "cls-\(engine.name)") else { return }
        defer { rig.finish() }
        try withTemporaryDirectory { dir in
            let path = "\(dir)/data"
            let (opened, _) = try rig.open(path, options: [.create, .truncate, .direct], tag: 1)
            let file = try #require(opened)
            let block = 4096
            let content = pattern(11, count: 16 * block)
            try file.write(at: 0, bytes: content, sink: .stage(rig.sink), tag: 2)
            #expect(rig.collector.completion(tagged: 2)?.result == Int64(content.count))
            let reads = 128
            var accepted = 0
            for r in 0..<reads {
                let offset = (r % 16) * block
                do {
                    try file.read(at: UInt64(offset), count: block, sink: .stage(rig.sink), tag: 100 + UInt64(r))
                    accepted += 1
                } catch SedaError.full {
                    break  // the stage's limit: fewer in flight, still a valid test
                }
            }
            try file.close(sink: .stage(rig.sink), tag: 3)
            #expect(throws: SedaError.system(errno: EBADF)) {
                try file.read(at: 0, count: block, sink: .stage(rig.sink), tag: 4)
            }
            let closeEvent = rig.collector.completion(tagged: 3)
            #expect(closeEvent?.result == 0)
            let all = rig.collector.all
            let readsDone = all.filter { $0.operation == .read }
            #expect(readsDone.count == accepted)
            for c in readsDone {
                #expect(c.order < closeEvent!.order, "a read completed after the close")
                if let e = c.error {
                    #expect(e == .system(errno: ECANCELED))
                } else {
                    let o = Int(c.offset)
                    #expect(c.bytes == Array(content[o..<o + block]))
                }
            }
            #expect(!descriptorOpen(on: path))
        }
    }

    /// Shutdown with I/O in flight: `.drain` delivers every completion;
    /// nothing hangs or leaks; the stage refuses requests afterwards.
    @Test(arguments: fileEngines)
    func shutdownWithRequestsInFlight(engine: DiskEngine) throws {
        guard let rig = try FileRig(engine: engine, name: "sd-\(engine.name)") else { return }
        try withTemporaryDirectory { dir in
            let path = "\(dir)/data"
            let (opened, _) = try rig.open(path, options: [.create, .truncate, .direct], tag: 1)
            let file = try #require(opened)
            let block = 4096
            let writes = 64
            var accepted = 0
            for i in 0..<writes {
                do {
                    try file.write(
                        at: UInt64(i * block), bytes: pattern(i, count: block), sink: .stage(rig.sink),
                        tag: 100 + UInt64(i))
                    accepted += 1
                } catch SedaError.full {
                    break
                }
            }
            try rig.runtime.shutdown(.drain)
            let done = rig.collector.all.filter { $0.operation == .write }
            #expect(done.count == accepted)
            for c in done {
                #expect(c.result == Int64(block) || c.error == .system(errno: ECANCELED))
            }
            #expect(throws: SedaError.self) {
                try file.read(at: 0, count: block, sink: .stage(rig.sink))
            }
            try rig.stage.destroy()
            #expect(!descriptorOpen(on: path))
            let stats = rig.stage.statistics
            #expect(stats.pending == 0)
            #expect(stats.eventsOutstanding == 0)
            #expect(stats.accepted == stats.completed)
        }
    }

    /// Destroying the stage with requests in flight and a file open: every
    /// completion comes (done or cancelled), the file is closed, the held
    /// `AsyncFile` refuses requests.
    @Test(arguments: fileEngines)
    func destroyWithRequestsInFlight(engine: DiskEngine) throws {
        guard let rig = try FileRig(engine: engine, name: "ds-\(engine.name)") else { return }
        defer { try? rig.runtime.shutdown(.drain) }
        try withTemporaryDirectory { dir in
            let path = "\(dir)/data"
            let (opened, _) = try rig.open(path, options: [.create, .truncate, .direct], tag: 1)
            let file = try #require(opened)
            let block = 4096
            var accepted = 0
            for i in 0..<64 {
                do {
                    try file.write(
                        at: UInt64(i * block), bytes: pattern(i, count: block), sink: .stage(rig.sink),
                        tag: 100 + UInt64(i))
                    accepted += 1
                } catch SedaError.full {
                    break
                }
            }
            try rig.stage.destroy()
            let done = rig.collector.wait(for: 1 + accepted).filter { $0.operation == .write }
            #expect(done.count == accepted)
            for c in done {
                #expect(c.result == Int64(block) || c.error == .system(errno: ECANCELED))
            }
            #expect(throws: SedaError.closed) {
                try file.read(at: 0, count: block, sink: .stage(rig.sink))
            }
            #expect(!descriptorOpen(on: path))
            #expect(rig.stage.statistics.filesOpen == 0)
        }
    }

    /// A file stage released on one of the runtime's shared threads (a
    /// handler held the last reference) is destroyed without deadlock.
    @Test func releasedOnTheRuntimesThreads() throws {
        let rt = try Runtime(cpuThreads: 1)
        defer { try? rt.shutdown(.drain) }
        final class Holder: @unchecked Sendable {
            let stage = Lock<FileStage?>(nil)
        }
        let holder = Holder()
        holder.stage.withLock { $0 = try? FileStage(runtime: rt, name: "held", engine: .threads) }
        struct Drop: EventHandler {
            let holder: Holder
            func handle(_ batch: inout EventBatch<Holder>) throws {
                holder.stage.withLock { $0 = nil }
            }
        }
        let s = try rt.addStage("drop", handler: Drop(holder: holder))
        try s.enqueue(holder)
        // The stage's name is free again once the detached destroy ran.
        waitUntil { (try? FileStage(runtime: rt, name: "held", engine: .threads)) != nil }
        #expect(throws: Never.self) { try FileStage(runtime: rt, name: "held", engine: .threads).destroy() }

        // The last reference dropped in a callback sink, on the stage's own
        // pool thread (opens run there): destroyed without deadlock too.
        holder.stage.withLock { $0 = try? FileStage(runtime: rt, name: "held", engine: .threads) }
        let fs = try #require(holder.stage.withLock { $0 })
        let refused = Lock<SedaError?>(nil)
        try fs.open(
            "/nonexistent-seda-file",
            sink: .callback { _ in
                // Its own thread: destroy() refuses; dropping it is fine.
                let s = holder.stage.withLock { $0 }
                do throws(SedaError) { try s?.destroy() } catch { refused.withLock { $0 = error } }
                holder.stage.withLock { $0 = nil }
            })
        _ = consume fs
        waitUntil { (try? FileStage(runtime: rt, name: "held", engine: .threads)) != nil }
        #expect(refused.withLock { $0 } == .wouldDeadlock)
        #expect(throws: Never.self) { try FileStage(runtime: rt, name: "held", engine: .threads).destroy() }
    }
}
