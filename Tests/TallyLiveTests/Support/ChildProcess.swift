import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn and reaped with waitpid by this class alone.
///
/// Foundation's `Process` on Linux learns of a child's exit through a socket the child inherits;
/// under many concurrent spawns (the live suites run in parallel) it once kept reporting a daemon
/// as running after it had exited. Here the exit is read from the kernel (waitpid), the child gets
/// a clean signal mask and default dispositions (a test thread may block SIGTERM), and every
/// descriptor above stderr is closed in the child, so no child holds another one's pipes.
final class ChildProcess: @unchecked Sendable {
    // @unchecked: `exitStatus` is guarded by `lock`; `pid` is immutable.
    let pid: pid_t
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// Starts `path` with `arguments`; `stdin`/`stdout`/`stderr` are descriptors to install as
    /// 0/1/2 (nil: /dev/null). The environment is this process's plus `environment`.
    init(_ path: String, _ arguments: [String], environment: [String: String] = [:], stdin: Int32? = nil, stdout: Int32? = nil, stderr: Int32? = nil) throws {
        // Writing to a child that has exited must be an EPIPE here, not a SIGPIPE that ends the tests.
        Glibc.signal(SIGPIPE, SIG_IGN)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, source) in [(Int32(0), stdin), (1, stdout), (2, stderr)] {
            if let source {
                posix_spawn_file_actions_adddup2(&actions, source, target)
            } else {
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            }
        }
        Self.addCloseFrom(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGCHLD, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var child = pid_t()
        let result = posix_spawn(&child, path, &actions, &attributes, argv, envp)
        guard result == 0 else { throw LiveTestError("cannot start \(path): \(String(cString: strerror(result)))") }
        pid = child
    }

    deinit {
        if isRunning {
            kill(pid, SIGKILL)
            _ = waitUntilExit()
        }
    }

    /// The exit status if the child has exited: its exit code, or 128 + the signal that ended it.
    func poll() -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        let reaped = waitpid(pid, &status, WNOHANG)
        guard reaped == pid else { return nil }
        exitStatus = Self.decode(status)
        return exitStatus
    }

    var isRunning: Bool { poll() == nil }

    /// Waits up to `timeoutSeconds`; nil if the child is still running then.
    func wait(timeoutSeconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while true {
            if let status = poll() { return status }
            if Date() >= deadline { return nil }
            usleep(5_000)
        }
    }

    /// Waits as long as it takes.
    @discardableResult
    func waitUntilExit() -> Int32 {
        while true {
            if let status = wait(timeoutSeconds: 3600) { return status }
        }
    }

    func signal(_ signal: Int32) { kill(pid, signal) }

    private static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// glibc's posix_spawn_file_actions_addclosefrom_np (2.34+); Swift's Glibc module does not
    /// declare it (it needs _GNU_SOURCE), so it is looked up by name.
    private static func addCloseFrom(_ actions: inout posix_spawn_file_actions_t, _ lowest: Int32) {
        typealias Function = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return }
        let function = unsafeBitCast(symbol, to: Function.self)
        _ = function(&actions, lowest)
    }
}

/// Opens `path` for appending (created if missing), close-on-exec: a child's stdout and stderr.
func openLogFile(_ path: String) throws -> Int32 {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw LiveTestError("cannot open \(path): \(String(cString: strerror(errno)))") }
    return fd
}

/// A pipe whose ends are close-on-exec in this process (a spawned child gets only what it is
/// given as 0/1/2).
struct ProcessPipe {
    let read: Int32
    let write: Int32

    init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw LiveTestError("pipe failed: \(String(cString: strerror(errno)))") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        read = fds[0]
        write = fds[1]
    }

    /// Reads the read end until EOF, then closes it.
    func readToEnd() -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(read, $0.baseAddress, $0.count) }
            if count > 0 {
                data.append(contentsOf: buffer[0..<count])
            } else if count == 0 || errno != EINTR {
                break
            }
        }
        close(read)
        return data
    }
}
