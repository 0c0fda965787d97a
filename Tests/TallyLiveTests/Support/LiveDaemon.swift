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
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    let input = Pipe()
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try? input.fileHandleForWriting.close()
    // Read both pipes concurrently so a chatty child cannot block on a full pipe.
    nonisolated(unsafe) var outData = Data(), errData = Data()
    let group = DispatchGroup()
    DispatchQueue.global().async(group: group) { outData = out.fileHandleForReading.readDataToEndOfFile() }
    DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
    if group.wait(timeout: .now() + timeoutSeconds) == .timedOut {
        process.terminate()
        throw LiveTestError("\(path) \(arguments) did not finish within \(timeoutSeconds) s")
    }
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
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
    private(set) var process: Process?
    private let logPath: String
    let extraArguments: [String]

    /// Creates the temp dir; `start()` launches the daemon.
    init(extraArguments: [String] = []) {
        directory = TemporaryDirectory("tallyd")
        dataDirectory = directory.path + "/data"
        socketPath = directory.path + "/tallyd.sock"
        logPath = directory.path + "/tallyd.log"
        self.extraArguments = extraArguments
    }

    deinit {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    var arguments: [String] { ["serve", "--data-dir", dataDirectory, "--socket", socketPath, "--log-level", "debug"] + extraArguments }

    /// Launches tallyd and waits until it answers getStatus.
    @discardableResult
    func start(timeoutSeconds: Double = 20) throws -> LiveDaemon {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binaries.tallyd)
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)!
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            if !process.isRunning {
                throw LiveTestError("tallyd exited with \(process.terminationStatus) during start:\n\(self.log)")
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

    var pid: Int32 { process?.processIdentifier ?? 0 }

    func kill9() {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Sends SIGTERM and waits; returns the exit status.
    @discardableResult
    func terminate(timeoutSeconds: Double = 20) throws -> Int32 {
        guard let process else { return 0 }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while process.isRunning, Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw LiveTestError("tallyd did not stop within \(timeoutSeconds) s of SIGTERM:\n\(log)")
        }
        return process.terminationStatus
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
