import Glibc
import Testing

@testable import SedaHTTP

/// A scratch directory tree for file tests, removed at deinit.
final class TempTree {
    let path: String

    init() {
        var template = Array("/tmp/seda-http-test.XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    deinit { _ = system("rm -rf '\(path)'") }

    func write(_ relative: String, _ text: String) {
        let full = "\(path)/\(relative)"
        let fd = open(full, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(fd >= 0, "open \(full)")
        var t = text
        t.withUTF8 { _ = Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    func mkdir(_ relative: String) { _ = Glibc.mkdir("\(path)/\(relative)", 0o755) }
    func symlink(_ target: String, _ relative: String) { _ = Glibc.symlink(target, "\(path)/\(relative)") }
}

extension DocumentRoot.Outcome {
    /// The file's contents, closing it; nil when not a file.
    var contents: String? {
        guard case .file(let fd, let st, _) = self else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: Int(st.st_size))
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        return String(decoding: buf[0..<max(n, 0)], as: UTF8.self)
    }
    var isNotFound: Bool { if case .notFound = self { true } else { false } }
    var isForbidden: Bool { if case .forbidden = self { true } else { false } }
    var isRedirect: Bool { if case .redirectToDirectory = self { true } else { false } }
}

@Suite struct DocumentRootTests {
    /// outside/secret, root/{index.html, a.txt, dir/{index.html, b.css}, empty/, links...}
    func makeTree() -> (TempTree, String) {
        let t = TempTree()
        t.mkdir("outside")
        t.write("outside/secret", "SECRET")
        t.mkdir("root")
        t.write("root/index.html", "<root index>")
        t.write("root/a.txt", "A")
        t.mkdir("root/dir")
        t.write("root/dir/index.html", "<dir index>")
        t.write("root/dir/b.css", "B")
        t.mkdir("root/empty")
        t.symlink("../outside/secret", "root/up-link")
        t.symlink("\(t.path)/outside/secret", "root/abs-link")
        t.symlink("../outside", "root/up-dir")
        t.symlink("a.txt", "root/in-link")
        t.symlink("dir", "root/in-dir")
        t.symlink("../../outside/secret", "root/dir/deep-up")
        t.symlink("/etc/passwd", "root/dir/index-escape-target")
        t.mkdir("root/escape-index")
        t.symlink("../../outside/secret", "root/escape-index/index.html")
        mkfifo("\(t.path)/root/fifo", 0o644)
        return (t, "\(t.path)/root")
    }

    @Test(arguments: [DocumentRoot.Resolution.beneath, .noSymlinks])
    func servesFilesAndIndexes(_ resolution: DocumentRoot.Resolution) throws {
        let (tree, rootPath) = makeTree()
        let root = try DocumentRoot(path: rootPath, resolution: resolution)
        #expect(root.open("/a.txt").contents == "A")
        #expect(root.open("/dir/b.css").contents == "B")
        #expect(root.open("/").contents == "<root index>")
        #expect(root.open("/dir/").contents == "<dir index>")
        #expect(root.open("/dir").isRedirect)
        #expect(root.open("/empty/").isForbidden)  // a directory without index.html
        #expect(root.open("/missing").isNotFound)
        #expect(root.open("/a.txt/").isNotFound)
        #expect(root.open("/fifo").isForbidden)  // opened non-blocking, refused as not regular
        if case .file(let fd, _, let type) = root.open("/dir/b.css") {
            close(fd)
            #expect(type.description == "text/css")
        }
        _ = tree
    }

    @Test(arguments: [DocumentRoot.Resolution.beneath, .noSymlinks])
    func noSymlinkLeadsOutOfTheRoot(_ resolution: DocumentRoot.Resolution) throws {
        let (tree, rootPath) = makeTree()
        let root = try DocumentRoot(path: rootPath, resolution: resolution)
        for escape in [
            "/up-link", "/abs-link", "/up-dir/secret", "/dir/deep-up", "/dir/index-escape-target",
            "/escape-index/", "/in-dir/../../outside/secret",
        ] {
            let outcome = root.open(escape)
            #expect(outcome.contents == nil, "\(escape) opened under \(resolution)")
            #expect(outcome.contents != "SECRET")
        }
        _ = tree
    }

    @Test func linksInsideTheRootWorkBeneathOnly() throws {
        let (tree, rootPath) = makeTree()
        let beneath = try DocumentRoot(path: rootPath, resolution: .beneath)
        #expect(beneath.open("/in-link").contents == "A")
        #expect(beneath.open("/in-dir/b.css").contents == "B")
        let strict = try DocumentRoot(path: rootPath, resolution: .noSymlinks)
        #expect(strict.open("/in-link").isNotFound)
        #expect(strict.open("/in-dir/b.css").isNotFound)
        _ = tree
    }

    @Test func theDefaultResolutionIsBeneathOnThisKernel() throws {
        let (tree, rootPath) = makeTree()
        #expect(try DocumentRoot(path: rootPath).resolution == .beneath)
        _ = tree
    }

    @Test func traversalThroughTheWholeRequestPath() throws {
        // Normalisation refuses these before the file system is asked.
        let (tree, rootPath) = makeTree()
        let root = try DocumentRoot(path: rootPath)
        for attack in [
            "/../outside/secret", "/%2e%2e/outside/secret", "/dir/%2e%2e/%2e%2e/outside/secret",
            "/..%2foutside%2fsecret", "/a.txt%00.html", "/%2e%2e%2foutside",
        ] {
            #expect(RequestPath.normalized(attack) == nil, "\(attack)")
        }
        // What normalisation lets through stays inside.
        #expect(root.open(RequestPath.normalized("/dir/../a.txt")!).contents == "A")
        _ = tree
    }

    @Test func aMissingRootIsAConfigurationError() {
        #expect(throws: HTTPConfigurationError.self) { try DocumentRoot(path: "/nonexistent/seda-root") }
    }

    @Test func contentTypes() {
        #expect(ContentType.forPath("/a/b.HTML").description == "text/html")
        #expect(ContentType.forPath("/x.tar.gz").description == "application/gzip")
        #expect(ContentType.forPath("/x.woff2").description == "font/woff2")
        #expect(ContentType.forPath("/noext").description == "application/octet-stream")
        #expect(ContentType.forPath("/dir.d/noext").description == "application/octet-stream")
        #expect(ContentType.forPath("/trailing.").description == "application/octet-stream")
    }
}
