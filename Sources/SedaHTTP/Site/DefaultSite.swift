/// The built-in default site's page: the seed's 8 KB web page ("return
/// 8 KB webpage from memory"), exactly 8,192 bytes of HTML.
public enum DefaultSite {
    /// The page's size in bytes.
    public static let pageSize = 8192

    /// The page's bytes.
    public static let html: [UInt8] = {
        let head = """
            <!DOCTYPE html>
            <html><head><meta charset="utf-8"><title>Seda</title></head>
            <body>
            <h1>Seda</h1>
            <p>This is Haboob's page, served by seda-httpd: the Staged Event-Driven Architecture
            (SEDA, Welsh, Culler and Brewer, SOSP 2001) rebuilt with a C core and a Swift library.
            The seed's benchmark asks for an 8 KB page from memory; this is it.</p>
            <p>Live statistics: <a href="/status">/status</a>, <a href="/metrics">/metrics</a>.
            Load conditioning at work: <a href="/bottleneck">/bottleneck</a>.</p>
            <pre>

            """
        let tail = "\n</pre>\n</body></html>\n"
        let line = "stage -> queue -> handler -> stage -> queue -> handler -> stage -> queue -> handler\n"
        var bytes = Array(head.utf8)
        let room = pageSize - bytes.count - tail.utf8.count
        let filler = Array(line.utf8)
        for k in 0..<room { bytes.append(filler[k % filler.count]) }
        bytes.append(contentsOf: tail.utf8)
        precondition(bytes.count == pageSize)
        return bytes
    }()

    /// The page as a cache entry, last modified at `modified` (seconds since the epoch).
    public static func page(modified: Int64) -> CachedPage {
        let body = html.withUnsafeBytes { HTTPBuffer(copying: $0) }
        return CachedPage(
            body: body, contentType: "text/html",
            identity: FileIdentity(
                device: 0, inode: 0, size: Int64(pageSize),
                modifiedNanoseconds: modified &* 1_000_000_000))
    }
}
