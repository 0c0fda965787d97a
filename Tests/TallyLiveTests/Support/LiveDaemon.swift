import Foundation
import TallyClient
import TallyProtocol
#if canImport(Glibc)
import Glibc
#endif

/// Where the built executables are: beside the test bundle (SwiftPM builds `tallyd` and `tally`
/// because the test target depends on them), or TALLYD_BIN / TALLY_BIN.
enum Binaries {
    static var directory: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }

    static var tallyd: String { ProcessInfo.processInfo.environment["TALLYD_BIN"] ?? directory + "/tallyd" }
    static var tally: String { ProcessInfo.processInfo.environment["TALLY_BIN"] ?? directory + "/tally" }
}

/// A private temporary directory (mode 0700), removed on deinit.
final class TemporaryDirectory {
    let path: String

    init(_ prefix: String = "tally") {
        var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: \(String(cString: strerror(errno)))")
        path = String(cString: made!)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// The output of a finished process.
struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to completion, with optional stdin and environment additions.
func runProgram(_ path: String, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:], timeoutSeconds: Double = 60) throws -> ProcessResult {
    let input = try ProcessPipe(), out = try ProcessPipe(), err = try ProcessPipe()
    let child: ChildProcess
    do {
        child = try ChildProcess(path, arguments, environment: environment, stdin: input.read, stdout: out.write, stderr: err.write)
    } catch {
        for fd in [input.read, input.write, out.read, out.write, err.read, err.write] { close(fd) }
        throw error
    }
    for fd in [input.read, out.write, err.write] { close(fd) }
    // Read both pipes concurrently so a chatty child cannot block on a full pipe.
    nonisolated(unsafe) var outData = Data(), errData = Data()
    let group = DispatchGroup()
    DispatchQueue.global().async(group: group) { outData = out.readToEnd() }
    DispatchQueue.global().async(group: group) { errData = err.readToEnd() }
    if let stdin {
        let bytes = Array(stdin.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(input.write, $0.baseAddress, $0.count) }
            if written > 0 { offset += written } else if errno != EINTR { break }
        }
    }
    close(input.write)
    if group.wait(timeout: .now() + timeoutSeconds) == .timedOut {
        child.signal(SIGKILL)
        throw LiveTestError("\(path) \(arguments) did not finish within \(timeoutSeconds) s")
    }
    guard let status = child.wait(timeoutSeconds: timeoutSeconds) else {
        child.signal(SIGKILL)
        throw LiveTestError("\(path) \(arguments) closed its output but did not exit within \(timeoutSeconds) s")
    }
    return ProcessResult(status: status, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
}

struct LiveTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A real `tallyd` process on a temporary data directory and socket.
final class LiveDaemon {
    let directory: TemporaryDirectory
    let dataDirectory: String
    let socketPath: String
    private(set) var process: ChildProcess?
    private let logPath: String
    let extraArguments: [String]

    /// Creates the temp dir; `start()` launches the daemon (on `dataDirectory`, by default a
    /// `data` folder in the temp dir).
    init(extraArguments: [String] = [], dataDirectory: String? = nil) {
        directory = TemporaryDirectory("tallyd")
        self.dataDirectory = dataDirectory ?? directory.path + "/data"
        socketPath = directory.path + "/tallyd.sock"
        logPath = directory.path + "/tallyd.log"
        self.extraArguments = extraArguments
    }


    var arguments: [String] { ["serve", "--data-dir", dataDirectory, "--socket", socketPath, "--log-level", "debug"] + extraArguments }

    deinit {
        // Before the temporary directory goes: a daemon still running is killed first.
        if let process, process.isRunning {
            process.signal(SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Launches tallyd and waits until it answers getStatus.
    @discardableResult
    func start(timeoutSeconds: Double = 20) throws -> LiveDaemon {
        let log = try openLogFile(logPath)
        defer { close(log) }
        let process = try ChildProcess(Binaries.tallyd, arguments, stdout: log, stderr: log)
        self.process = process
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            if let status = process.poll() {
                throw LiveTestError("tallyd exited with \(status) during start:\n\(self.log)")
            }
            if let connection = try? connect(), (try? connection.call("getStatus")) != nil { return self }
            usleep(20_000)
        }
        throw LiveTestError("tallyd did not answer within \(timeoutSeconds) s:\n\(self.log)")
    }

    func connect(timeoutSeconds: Int = 30) throws -> TallyConnection {
        try TallyConnection(socketPath: socketPath, timeoutSeconds: timeoutSeconds)
    }

    /// One call on a fresh connection.
    func call(_ method: String, _ params: JSONObject = [:]) throws -> JSONValue {
        let connection = try connect()
        defer { connection.close() }
        return try connection.call(method, params)
    }

    var pid: Int32 { process?.pid ?? 0 }

    func kill9() {
        guard let process else { return }
        process.signal(SIGKILL)
        process.waitUntilExit()
    }

    /// Kills the daemon (SIGKILL) at a random moment, `delay` microseconds, after `acknowledged()`
    /// first holds (on a loaded machine a stream's first reply can take longer than any fixed
    /// wait), then waits for `streamer` to see the daemon die.
    func kill9(afterFirst acknowledged: () -> Bool, of streamer: Thread, delay: ClosedRange<UInt32>) {
        let deadline = Date().addingTimeInterval(30)
        while !acknowledged(), !streamer.isFinished, Date() < deadline { usleep(1000) }
        var generator = SystemRandomNumberGenerator()
        usleep(UInt32.random(in: delay, using: &generator))
        kill9()
        while !streamer.isFinished { usleep(1000) }
    }

    /// Sends SIGTERM and waits; returns the exit status.
    @discardableResult
    func terminate(timeoutSeconds: Double = 20) throws -> Int32 {
        guard let process else { return 0 }
        process.signal(SIGTERM)
        guard let status = process.wait(timeoutSeconds: timeoutSeconds) else {
            let threads = Self.threadStates(process.pid)
            process.signal(SIGKILL)
            process.waitUntilExit()
            throw LiveTestError("tallyd did not stop within \(timeoutSeconds) s of SIGTERM; its threads were:\n\(threads)\n\(log)")
        }
        return status
    }

    /// Each thread's name, state and kernel wait channel, for a daemon that does not stop.
    private static func threadStates(_ pid: pid_t) -> String {
        let directory = "/proc/\(pid)/task"
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return tasks.sorted().map { task in
            func read(_ name: String) -> String {
                ((try? String(contentsOfFile: "\(directory)/\(task)/\(name)", encoding: .utf8)) ?? "?").trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let state = read("status").split(separator: "\n").first { $0.hasPrefix("State:") } ?? "?"
            return "  \(task) \(read("comm")) \(state) wchan=\(read("wchan"))"
        }.joined(separator: "\n")
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
}

extension JSONValue {
    /// A field of an object result, for terse assertions.
    func field(_ path: String) -> JSONValue? {
        var current: JSONValue? = self
        for part in path.split(separator: ".") { current = current?[String(part)] }
        return current
    }
}
