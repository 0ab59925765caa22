import Glibc

/// connect(2) of the blocking socket `fd` to 127.0.0.1:`port`, for the test
/// suites' raw clients. A signal that interrupts the call (a test process
/// gets SIGCHLD whenever a suite's child process, curl, exits) does not stop
/// the handshake: it is waited out (up to 20 s) and its outcome read.
///
/// Returns 0 once connected, else the error (an errno value).
/// Thread rules: any thread; `fd` is the caller's.
public func connectLoopback(_ fd: Int32, port: UInt16) -> Int32 {
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_port = port.bigEndian
    a.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    let r = withUnsafePointer(to: &a) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    if r == 0 { return 0 }
    guard errno == EINTR else { return errno }
    var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
    while poll(&p, 1, 20_000) < 0 && errno == EINTR {}
    if p.revents & Int16(POLLOUT) == 0 { return ETIMEDOUT }
    var err: Int32 = 0
    var len = socklen_t(MemoryLayout<Int32>.size)
    if getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 { return errno }
    return err
}
