import Logging
import Seda

/// ``HTTPResponseOutput`` over a socket-layer connection: copies go to
/// `seda_conn_write_copy`, buffers out by reference (held until sent), files
/// with sendfile. A write the connection refuses (closed, over its hard
/// limit) closes it: the response is lost with the connection, and the
/// rest of the response's writes are skipped.
///
/// With an access log, each response head written is logged with the
/// request it answers (``HTTPConnectionState/loggedRequests``); heads are
/// the copies (``writeCopy(_:)``) that start with "HTTP/1.".
///
/// Thread rules: the connection's owner thread, for one call of the
/// request processor.
struct HTTPConnectionOutput: HTTPResponseOutput {
    let connection: Connection
    let state: HTTPConnectionState
    let accessLog: Logger?
    private(set) var failed = false

    init(_ connection: Connection, _ state: HTTPConnectionState, accessLog: Logger?) {
        self.connection = connection
        self.state = state
        self.accessLog = accessLog
    }

    mutating func writeCopy(_ bytes: UnsafeRawBufferPointer) {
        if failed { return }
        if let log = accessLog { logHead(bytes, log) }
        do {
            try connection.write(bytes)
        } catch {
            fail()
        }
    }

    mutating func write(_ buffer: HTTPBuffer, offset: Int, count: Int) {
        if failed || count == 0 { return }
        // A body (heads are always copies): never logged, whatever it starts with.
        let part = UnsafeRawBufferPointer(rebasing: buffer.bytes[offset..<(offset + count)])
        do {
            try connection.write(buffer: part, retaining: buffer)
        } catch {
            fail()
        }
    }

    mutating func sendFile(_ file: HTTPFileBody, offset: Int64, count: Int64) {
        if failed || count <= 0 { return }
        do {
            try connection.write(file: file.descriptor, offset: UInt64(offset), count: UInt64(count), retaining: file)
        } catch {
            fail()
        }
    }

    private mutating func fail() {
        failed = true
        state.closing = true
        connection.close()
    }

    /// Logs a response head (a write that starts with "HTTP/1.") with the
    /// request it answers.
    private func logHead(_ bytes: UnsafeRawBufferPointer, _ log: Logger) {
        let prefix: [UInt8] = Array("HTTP/1.".utf8)
        guard bytes.count > 12, bytes.prefix(prefix.count).elementsEqual(prefix) else { return }
        let lineEnd = bytes.firstIndex(of: 13) ?? bytes.count
        let statusLine = String(decoding: bytes[0..<lineEnd], as: UTF8.self)
        let request = state.loggedRequests.isEmpty ? "-" : state.loggedRequests.removeFirst()
        log.info(
            "\(connection.peer ?? "-") \"\(request)\" \(statusLine.dropFirst(9))",
            metadata: ["connection": "\(connection.id)"])
    }
}
