import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why the daemon cannot start here. Each message says what is wrong and what to do.
public struct StartupError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The data directory's exclusive lock, held for the daemon's whole life. A second daemon on the
/// same data directory fails to take it and stops before it touches the socket.
final class DataDirectoryLock {
    private let fd: Int32
    let path: String

    /// Creates the data directory (mode 0700) if needed and takes `<dir>/tallyd.lock`.
    init(dataDirectory: String) throws(StartupError) {
        try Self.makePrivateDirectory(dataDirectory, what: "data directory")
        path = dataDirectory + "/tallyd.lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StartupError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw StartupError("another tallyd\(holder.isEmpty ? "" : " (pid \(holder))") is running on data directory \(dataDirectory); stop it first, or use another --data-dir")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit {
        // The kernel drops the lock when the descriptor closes.
        close(fd)
    }

    /// Makes `path` (and missing parents) with mode 0700; an existing directory must not be
    /// open to other users.
    static func makePrivateDirectory(_ path: String, what: String) throws(StartupError) {
        var info = stat()
        if stat(path, &info) != 0 {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw StartupError("cannot create \(what) \(path): \(error.localizedDescription)")
            }
            return
        }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw StartupError("\(what) \(path) exists and is not a directory") }
        if info.st_mode & 0o077 != 0 {
            guard chmod(path, 0o700) == 0 else {
                throw StartupError("\(what) \(path) is open to other users (mode \(String(info.st_mode & 0o777, radix: 8))) and cannot be made private: \(String(cString: strerror(errno)))")
            }
        }
    }
}

/// Checks and prepares the socket path: its directory must be private to this user, and an
/// existing socket is removed only when no daemon answers on it (a stale one from a crash).
enum SocketPath {
    static func prepare(_ path: String, dataDirectory: String) throws(StartupError) {
        // SwiftNIO takes at most 103 bytes (the smallest `sun_path` of the systems it supports).
        guard path.utf8.count <= 103 else {
            throw StartupError("socket path \(path) is \(path.utf8.count) bytes, too long for the Unix socket (at most 103); use a shorter --socket")
        }
        let directory = (path as NSString).deletingLastPathComponent
        let parent = directory.isEmpty ? "." : directory
        var info = stat()
        if stat(parent, &info) != 0 {
            try DataDirectoryLock.makePrivateDirectory(parent, what: "socket directory")
        } else if info.st_mode & 0o077 != 0 {
            throw StartupError("socket directory \(parent) can be entered by other users (mode \(String(info.st_mode & 0o777, radix: 8))); put the socket in a directory only you can enter (chmod 700), e.g. the data directory")
        }
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw StartupError("\(path) exists and is not a socket; refusing to replace it")
        }
        if isAnswering(path) {
            throw StartupError("a daemon is already listening on \(path); stop it first, or use another --socket")
        }
        unlink(path)
    }

    /// True when something accepts connections on the socket.
    static func isAnswering(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return result == 0
    }
}
