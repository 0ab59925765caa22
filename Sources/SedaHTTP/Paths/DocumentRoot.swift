import CSedaHTTP
import Glibc

/// The directory a site serves, and the one way to open a file under it.
///
/// No path ever leaves the root. Paths arrive normalised (``RequestPath``:
/// no "..", no encoded slash or NUL); on top of that every open is resolved
/// by the kernel relative to the root's descriptor:
/// - ``Resolution/beneath`` (the default where the kernel has openat2(2)):
///   `RESOLVE_BENEATH`: symbolic links are followed only while they stay
///   inside the root; a link pointing out (absolute, or with enough "..")
///   fails the open.
/// - ``Resolution/noSymlinks``: openat(2) one component at a time with
///   `O_NOFOLLOW`: no symbolic link is followed at all (the fallback where
///   openat2 is missing, and a stricter choice anywhere).
///
/// Directories are served through their `index.html`; a directory asked for
/// without its trailing slash is redirected to it (as nginx does); anything
/// that is not a regular file is refused. Files open with `O_NONBLOCK`, so a
/// FIFO planted in the root cannot block the opening thread.
///
/// Thread rules: any thread; opens block on the file system, so they belong
/// on a dedicated stage (the file-read stage).
public final class DocumentRoot: @unchecked Sendable {
    // @unchecked: immutable; the descriptor is only read.
    public enum Resolution: Sendable, Equatable {
        /// openat2 with RESOLVE_BENEATH: links inside the root work.
        case beneath
        /// Component by component with O_NOFOLLOW: no links at all.
        case noSymlinks
    }

    /// What opening a request path gave.
    public enum Outcome {
        /// A regular file, open for reading (the caller closes it), with the
        /// Content-Type of the name opened (`index.html` for a directory).
        case file(descriptor: Int32, stat: stat, contentType: StaticString)
        /// A directory asked for without its trailing slash: redirect to it.
        case redirectToDirectory
        /// Nothing there, or a path that would leave the root (404).
        case notFound
        /// Not readable, not a regular file, or a directory without index (403).
        case forbidden
        /// Any other failure (errno), answered 500.
        case failed(Int32)
    }

    /// The root as given.
    public let path: String
    /// How paths are resolved.
    public let resolution: Resolution
    let descriptor: Int32

    /// Opens `path` (a directory). `resolution` nil: ``Resolution/beneath``
    /// when the kernel supports it, else ``Resolution/noSymlinks``.
    public init(path: String, resolution: Resolution? = nil) throws(HTTPConfigurationError) {
        let fd = Glibc.open(path, seda_http_o_path | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 {
            throw HTTPConfigurationError(message: "document root '\(path)': \(String(cString: strerror(errno)))")
        }
        self.path = path
        descriptor = fd
        if let resolution {
            self.resolution = resolution
        } else {
            let probe = seda_http_open_beneath(fd, ".", O_RDONLY | O_DIRECTORY)
            if probe >= 0 { close(probe) }
            self.resolution = probe >= 0 ? .beneath : .noSymlinks
        }
        if self.resolution == .beneath {
            let probe = seda_http_open_beneath(fd, ".", O_RDONLY | O_DIRECTORY)
            if probe < 0 {
                close(fd)
                throw HTTPConfigurationError(message: "document root '\(path)': openat2 unavailable (\(-probe))")
            }
            close(probe)
        }
    }

    deinit { close(descriptor) }

    /// Opens the file a normalised request path names (see
    /// ``RequestPath/normalize(_:into:)``). The caller closes the descriptor
    /// of a ``Outcome/file(descriptor:stat:contentType:)``.
    public func open(_ normalized: UnsafeRawBufferPointer) -> Outcome {
        guard normalized.count >= 1, normalized[0] == UInt8(ascii: "/") else { return .notFound }
        let wantsDirectory = normalized[normalized.count - 1] == UInt8(ascii: "/")
        var relative = UnsafeRawBufferPointer(rebasing: normalized[1...])
        if wantsDirectory && relative.count > 0 { relative = UnsafeRawBufferPointer(rebasing: relative.dropLast()) }
        let index: StaticString = "index.html"
        return withUnsafeTemporaryAllocation(byteCount: relative.count + index.utf8CodeUnitCount + 3, alignment: 1) {
            name -> Outcome in
            // The relative name, NUL-terminated ("." for the root itself).
            var n = 0
            if relative.count == 0 {
                name[0] = UInt8(ascii: ".")
                n = 1
            } else {
                for b in relative {
                    // RequestPath never lets a NUL through; refuse one anyway.
                    if b == 0 { return .notFound }
                    name[n] = b
                    n += 1
                }
            }
            name[n] = 0
            let flags = O_RDONLY | O_NONBLOCK | O_NOCTTY
            var fd = openRelative(name.baseAddress!, flags: flags)
            if fd < 0 { return failure(-fd) }
            var st = stat()
            if fstat(fd, &st) != 0 {
                let e = errno
                close(fd)
                return .failed(e)
            }
            var contentType = ContentType.forPath(relative)
            if wantsDirectory && (st.st_mode & S_IFMT) != S_IFDIR {
                // "/file.txt/": not a directory (as open(2) says with ENOTDIR).
                close(fd)
                return .notFound
            }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                close(fd)
                if !wantsDirectory { return .redirectToDirectory }
                // <dir>/index.html, resolved from the root again.
                if relative.count == 0 {
                    n = 0
                } else {
                    name[n] = UInt8(ascii: "/")
                    n += 1
                }
                for k in 0..<index.utf8CodeUnitCount {
                    name[n] = index.utf8Start[k]
                    n += 1
                }
                name[n] = 0
                fd = openRelative(name.baseAddress!, flags: flags)
                if fd < 0 {
                    let e = -fd
                    return e == ENOENT ? .forbidden : failure(e)
                }
                if fstat(fd, &st) != 0 {
                    let e = errno
                    close(fd)
                    return .failed(e)
                }
                contentType = ContentType.html
            }
            if (st.st_mode & S_IFMT) != S_IFREG {
                close(fd)
                return .forbidden
            }
            return .file(descriptor: fd, stat: st, contentType: contentType)
        }
    }

    /// `open` on a string path (tests).
    public func open(_ normalized: String) -> Outcome {
        var p = normalized
        return p.withUTF8 { open(UnsafeRawBufferPointer($0)) }
    }

    private func failure(_ e: Int32) -> Outcome {
        switch e {
        case ENOENT, ENOTDIR, EXDEV, ELOOP, ENAMETOOLONG: return .notFound
        case EACCES, EPERM: return .forbidden
        default: return .failed(e)
        }
    }

    /// Opens a NUL-terminated relative name under the root; a descriptor or -errno.
    private func openRelative(_ name: UnsafeMutableRawPointer, flags: Int32) -> Int32 {
        let cname = name.assumingMemoryBound(to: CChar.self)
        switch resolution {
        case .beneath:
            return seda_http_open_beneath(descriptor, cname, flags)
        case .noSymlinks:
            return openComponentwise(cname, flags: flags)
        }
    }

    /// Walks `name` one component at a time, refusing every symbolic link.
    private func openComponentwise(_ name: UnsafeMutablePointer<CChar>, flags: Int32) -> Int32 {
        var dir = descriptor
        var start = name
        defer { if dir != descriptor { close(dir) } }
        while true {
            var end = start
            while end.pointee != 0 && end.pointee != CChar(UInt8(ascii: "/")) { end += 1 }
            if end.pointee == 0 {
                let fd = openat(dir, start, flags | O_NOFOLLOW | O_CLOEXEC)
                return fd >= 0 ? fd : -errno
            }
            end.pointee = 0
            let next = openat(dir, start, seda_http_o_path | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            end.pointee = CChar(UInt8(ascii: "/"))
            if next < 0 { return -errno }
            if dir != descriptor { close(dir) }
            dir = next
            start = end + 1
        }
    }
}

/// An errno value as an Error.
struct SystemError: Error {
    let errno: Int32
}

/// Reads a whole regular file of `size` bytes into a buffer with pread;
/// fails with the errno (ESTALE if the file shrank while read).
func readWholeFile(_ fd: Int32, size: Int) -> Result<HTTPBuffer, SystemError> {
    let buffer = HTTPBuffer(count: size)
    let result: Int32 = buffer.withUnsafeMutableBytes { out in
        var done = 0
        while done < size {
            let n = pread(fd, out.baseAddress! + done, size - done, off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if n == 0 { return ESTALE }  // shrank while read
            done += n
        }
        return 0
    }
    return result == 0 ? .success(buffer) : .failure(SystemError(errno: result))
}
