import Glibc
import Testing

@testable import Seda

@Suite("FileStage.adopt")
struct FileAdoptTests {
    @Test(arguments: fileEngines)
    func adoptedDescriptorReadsIntoCallerMemoryAndCloses(engine: DiskEngine) throws {
        guard let rig = try FileRig(engine: engine, name: "adopt-\(engine.name)") else { return }
        defer { rig.finish() }
        try withTemporaryDirectory { dir in
            let path = "\(dir)/data"
            let content = pattern(11, count: 10_000)
            let w = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            #expect(content.withUnsafeBytes { Glibc.write(w, $0.baseAddress, $0.count) } == content.count)
            close(w)
            let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            #expect(fd >= 0)
            let file = try rig.stage.adopt(descriptor: fd)
            #expect(!file.isDirect)
            #expect(file.engine == (engine == .libaio ? .threads : engine))
            #expect(rig.stage.statistics.filesOpen == 1)
            // Three reads in flight into one caller buffer, the last past the end.
            let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: 12_288, alignment: 16)
            defer { memory.deallocate() }
            for k in 0..<3 {
                try file.readUnsafe(
                    at: UInt64(k * 4096),
                    into: UnsafeMutableRawBufferPointer(rebasing: memory[(k * 4096)..<((k + 1) * 4096)]),
                    sink: .stage(rig.sink), tag: UInt64(k + 1))
            }
            let done = rig.collector.wait(for: 3)
            #expect(done.map(\.result).reduce(0, +) == 10_000)
            #expect(done.allSatisfy { $0.error == nil })
            #expect(Array(memory[0..<10_000]) == content)
            try file.close(sink: .stage(rig.sink), tag: 9)
            #expect(rig.collector.completion(tagged: 9)?.result == 0)
            #expect(!descriptorOpen(on: path))
            #expect(fcntl(fd, F_GETFD) < 0)
        }
    }

    @Test(arguments: fileEngines)
    func refusedAdoptionsLeaveTheDescriptorToTheCaller(engine: DiskEngine) throws {
        guard let rig = try FileRig(engine: engine, name: "adoptno-\(engine.name)") else { return }
        defer { rig.finish() }
        try withTemporaryDirectory { dir in
            let path = "\(dir)/data"
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            #expect(throws: SedaError.invalidArgument) { _ = try rig.stage.adopt(descriptor: fd) }
            #expect(fcntl(fd, F_GETFD) >= 0)
            close(fd)
            #expect(throws: SedaError.system(errno: EBADF)) { _ = try rig.stage.adopt(descriptor: fd) }
            #expect(throws: SedaError.invalidArgument) { _ = try rig.stage.adopt(descriptor: -1) }
            // Never closed by the application: destroy closes it.
            let kept = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            let file = try rig.stage.adopt(descriptor: kept)
            try rig.stage.destroy()
            #expect(!descriptorOpen(on: path))
            #expect(throws: SedaError.closed) { try file.read(at: 0, count: 1, sink: .stage(rig.sink)) }
            let late = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            #expect(throws: SedaError.closed) { _ = try rig.stage.adopt(descriptor: late) }
            #expect(fcntl(late, F_GETFD) >= 0)
            close(late)
        }
    }
}
