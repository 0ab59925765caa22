/// Content-Type by file extension, as constant bytes (no allocation).
public enum ContentType {
    /// The type for a file name (its last extension, case-insensitive);
    /// `application/octet-stream` when unknown.
    public static func forPath(_ path: UnsafeRawBufferPointer) -> StaticString {
        var dot = path.count
        var i = path.count
        while i > 0 {
            i -= 1
            let c = path[i]
            if c == UInt8(ascii: "/") { break }
            if c == UInt8(ascii: ".") {
                dot = i
                break
            }
        }
        guard dot < path.count - 1 else { return octetStream }
        let ext = UnsafeRawBufferPointer(rebasing: path[(dot + 1)...])
        guard ext.count <= 8 else { return octetStream }
        // Lowercase into a small stack value for the comparisons.
        var lower: UInt64 = 0
        for k in 0..<ext.count {
            var c = ext[k]
            if c >= 0x41 && c <= 0x5A { c |= 0x20 }
            lower |= UInt64(c) << (8 * UInt64(k))
        }
        for (name, type) in table where name.key == lower { return type }
        return octetStream
    }

    /// ``forPath(_:)`` on a string.
    public static func forPath(_ path: String) -> StaticString {
        var p = path
        return p.withUTF8 { forPath(UnsafeRawBufferPointer($0)) }
    }

    public static let octetStream: StaticString = "application/octet-stream"
    public static let html: StaticString = "text/html"

    private struct Key {
        let key: UInt64
        init(_ s: StaticString) {
            var k: UInt64 = 0
            for i in 0..<s.utf8CodeUnitCount { k |= UInt64(s.utf8Start[i]) << (8 * UInt64(i)) }
            key = k
        }
    }

    private static let table: [(Key, StaticString)] = [
        (Key("html"), "text/html"), (Key("htm"), "text/html"), (Key("css"), "text/css"),
        (Key("js"), "text/javascript"), (Key("mjs"), "text/javascript"), (Key("json"), "application/json"),
        (Key("txt"), "text/plain"), (Key("md"), "text/markdown"), (Key("csv"), "text/csv"),
        (Key("xml"), "application/xml"), (Key("svg"), "image/svg+xml"), (Key("png"), "image/png"),
        (Key("jpg"), "image/jpeg"), (Key("jpeg"), "image/jpeg"), (Key("gif"), "image/gif"),
        (Key("webp"), "image/webp"), (Key("avif"), "image/avif"), (Key("ico"), "image/x-icon"),
        (Key("pdf"), "application/pdf"), (Key("wasm"), "application/wasm"), (Key("woff"), "font/woff"),
        (Key("woff2"), "font/woff2"), (Key("ttf"), "font/ttf"), (Key("otf"), "font/otf"),
        (Key("mp4"), "video/mp4"), (Key("webm"), "video/webm"), (Key("mp3"), "audio/mpeg"),
        (Key("ogg"), "audio/ogg"), (Key("wav"), "audio/wav"), (Key("zip"), "application/zip"),
        (Key("gz"), "application/gzip"), (Key("tar"), "application/x-tar"),
        (Key("dot"), "text/vnd.graphviz"),
    ]
}
