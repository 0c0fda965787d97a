import Foundation
import TallyClient
import TallyProtocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

// MARK: - One daemon per suite

/// The daemon of the suite being run, set by ``SharedDaemonTrait``.
final class SharedDaemon: @unchecked Sendable {
    // @unchecked: LiveDaemon is only read after start, and its own methods are safe to call from
    // several tests (each test opens its own connections).
    @TaskLocal static var current: SharedDaemon?

    let daemon: LiveDaemon
    /// What the suite's tests share beside the daemon (by name), released with it.
    private var companions: [String: AnyObject] = [:]
    private let companionsLock = NSLock()

    init(_ daemon: LiveDaemon) { self.daemon = daemon }

    /// The suite's daemon; fails the test if the suite lacks the `.sharedDaemon` trait.
    static func get() throws -> LiveDaemon {
        try running().daemon
    }

    /// The suite's `name` companion, made by `make` for its first test. Kept here, not in a
    /// static, so it goes with the daemon at the end of the suite (a static would keep the
    /// daemon, and its temporary directory, alive until the process exits).
    static func companion<T: AnyObject>(_ name: String, make: (LiveDaemon) -> T) throws -> T {
        let shared = try running()
        shared.companionsLock.lock()
        defer { shared.companionsLock.unlock() }
        if let existing = shared.companions[name] as? T { return existing }
        let made = make(shared.daemon)
        shared.companions[name] = made
        return made
    }

    private static func running() throws -> SharedDaemon {
        guard let current else { throw LiveTestError("no shared daemon: add the .sharedDaemon trait to the suite") }
        return current
    }
}

/// Starts one `tallyd` before a suite's tests and stops it (SIGTERM, expecting exit 0) after them.
struct SharedDaemonTrait: SuiteTrait, TestScoping {
    var extraArguments: [String] = []

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let daemon = try LiveDaemon(extraArguments: extraArguments).start()
        let shared = SharedDaemon(daemon)
        do {
            try await SharedDaemon.$current.withValue(shared) { try await function() }
        } catch {
            _ = try? daemon.terminate()
            throw error
        }
        let status = try daemon.terminate()
        #expect(status == 0, "the shared tallyd exited with \(status) at the end of the suite:\n\(daemon.log)")
    }
}

extension Trait where Self == SharedDaemonTrait {
    /// One daemon for the whole suite: `try SharedDaemon.get()` in each test.
    static var sharedDaemon: Self { SharedDaemonTrait() }
}

// MARK: - Ids and small calls

/// A customer id no other test uses.
func uniqueID(_ prefix: String) -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
}

extension LiveDaemon {
    /// `getStatus.lastSequence` as an integer.
    func lastSequence() throws -> Int {
        let status = try call("getStatus")
        guard let text = status["lastSequence"]?.numberText, let value = Int(text) else {
            throw LiveTestError("getStatus has no integer lastSequence: \(status.jsonText)")
        }
        return value
    }

    /// Sends one raw line on a fresh connection and returns the one reply line, parsed.
    func exchange(_ line: String) throws -> JSONValue {
        try exchange(Array(line.utf8))
    }

    func exchange(_ bytes: [UInt8]) throws -> JSONValue {
        let connection = try connect()
        defer { connection.close() }
        try connection.sendLine(bytes)
        return try connection.readReply()
    }

    /// Proves the daemon still serves a NEW connection: getStatus on a second connection answers.
    func expectServesOtherConnections(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let other = try connect()
        defer { other.close() }
        let status = try other.call("getStatus")
        #expect(status["version"]?.stringValue != nil, "getStatus on another connection failed: \(status.jsonText)", sourceLocation: sourceLocation)
    }
}

extension TallyConnection {
    /// Reads the next line and parses it; fails if the connection ends instead.
    func readReply() throws -> JSONValue {
        guard let line = try readLine() else { throw LiveTestError("the connection closed before a reply came") }
        do {
            return try JSONParser.parse(line)
        } catch {
            throw LiveTestError("unparsable reply (\(error)): \(String(decoding: line.prefix(300), as: UTF8.self))")
        }
    }

    /// Sends a line and reads the reply to it.
    func exchange(_ line: String) throws -> JSONValue {
        try sendLine(Array(line.utf8))
        return try readReply()
    }
}

// MARK: - Assertions on replies

/// Checks a JSON-RPC error reply: `jsonrpc`, the exact `id`, the code, and (optionally) `data.field`.
func expectError(
    _ reply: JSONValue, code: Int, id: JSONValue, field: String? = nil, messageContains: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(reply["jsonrpc"] == "2.0", "reply: \(reply.jsonText)", sourceLocation: sourceLocation)
    #expect(reply["id"] == id, "expected id \(id.jsonText): \(reply.jsonText)", sourceLocation: sourceLocation)
    #expect(reply["result"] == nil, "an error reply has no result: \(reply.jsonText)", sourceLocation: sourceLocation)
    #expect(reply.field("error.code") == .integer(code), "expected code \(code): \(reply.jsonText)", sourceLocation: sourceLocation)
    #expect(reply.field("error.message")?.stringValue != nil, "error.message must be a string: \(reply.jsonText)", sourceLocation: sourceLocation)
    if let field {
        #expect(reply.field("error.data.field") == .string(field), "expected data.field \(field): \(reply.jsonText)", sourceLocation: sourceLocation)
    }
    if let messageContains {
        let message = reply.field("error.message")?.stringValue ?? ""
        #expect(message.contains(messageContains), "expected the message to mention \(messageContains): \(reply.jsonText)", sourceLocation: sourceLocation)
    }
}

/// Checks a successful reply with the exact `id`; returns its result.
@discardableResult
func expectResult(_ reply: JSONValue, id: JSONValue, sourceLocation: SourceLocation = #_sourceLocation) -> JSONValue {
    #expect(reply["jsonrpc"] == "2.0", "reply: \(reply.jsonText)", sourceLocation: sourceLocation)
    #expect(reply["id"] == id, "expected id \(id.jsonText): \(reply.jsonText)", sourceLocation: sourceLocation)
    #expect(reply["error"] == nil, "unexpected error: \(reply.jsonText)", sourceLocation: sourceLocation)
    return reply["result"] ?? .null
}

/// Runs `body` and expects it to throw an RPCError with `code` (and `reason` if given).
@discardableResult
func expectRPCError(code: Int, reason: String? = nil, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> RPCError? {
    do {
        try body()
        Issue.record("expected RPC error \(code), got success", sourceLocation: sourceLocation)
        return nil
    } catch let error as RPCError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        if let reason { #expect(error.reason == reason, "\(error)", sourceLocation: sourceLocation) }
        return error
    } catch {
        Issue.record("expected RPC error \(code), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// `count` provisionCustomer request lines in one buffer: ids 0…count-1, customers `<prefix><id>`.
func provisionRequestLines(_ count: Int, prefix: String) -> [UInt8] {
    var lines: [UInt8] = []
    for i in 0..<count {
        lines += Array(#"{"jsonrpc":"2.0","id":\#(i),"method":"provisionCustomer","params":{"customerId":"\#(prefix)\#(i)"}}"#.utf8) + [UInt8(ascii: "\n")]
    }
    return lines
}

// MARK: - A raw socket

/// A bare Unix-socket client for what TallyConnection will not do: send bytes without a newline
/// and hang up.
final class RawSocket {
    private var fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LiveTestError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let message = String(cString: strerror(errno))
            Glibc.close(fd)
            throw LiveTestError("connect \(path): \(message)")
        }
    }

    /// Writes every byte as given (no newline added).
    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw LiveTestError("send: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    /// Writes `line` up to `count` times, each whole, until a write has waited `timeoutSeconds`
    /// (the server stopped reading); returns how many were written.
    func writeUntilBlocked(_ line: [UInt8], count: Int, timeoutSeconds: Int = 2) -> Int {
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        for written in 0..<count {
            var offset = 0
            while offset < line.count {
                let sent = line.withUnsafeBytes { raw in send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL)) }
                if sent < 0 {
                    if errno == EINTR { continue }
                    return written
                }
                offset += sent
            }
        }
        return count
    }

    /// Closes the sending side (as `socat` does at the end of its input); replies can still be read.
    func shutdownWrite() {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Reads lines until the server closes the connection (or `timeoutSeconds` passes between two).
    func readAllLines(timeoutSeconds: Int = 10) throws -> [[UInt8]] {
        var lines: [[UInt8]] = []
        while let line = try readLine(timeoutSeconds: timeoutSeconds) { lines.append(line) }
        return lines
    }

    /// Reads one line (without "\n"), waiting at most `timeoutSeconds`; nil at end of stream.
    func readLine(timeoutSeconds: Int = 10) throws -> [UInt8]? {
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if count > 0 {
                buffer += chunk[..<count]
            } else if count == 0 || errno == ECONNRESET {
                return nil
            } else if errno != EINTR {
                throw LiveTestError("recv: \(String(cString: strerror(errno)))")
            }
        }
    }

    private var buffer: [UInt8] = []

    func close() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }

    deinit { close() }
}

// MARK: - Files and programs

/// Writes `text` to `name` inside `directory`; returns the path.
func writeFile(_ text: String, named name: String, in directory: TemporaryDirectory) throws -> String {
    let path = directory.path + "/" + name
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// The first executable called `name` on PATH (or in the usual places), or nil.
func findExecutable(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    let directories = path.split(separator: ":").map(String.init) + ["/usr/local/bin", "/usr/bin", "/bin"]
    for directory in directories {
        let candidate = directory + "/" + name
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// The repository root, from this file's location (Tests/TallyLiveTests/Support/Helpers.swift).
func repositoryRoot() -> String {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<4 { url.deleteLastPathComponent() }
    return url.path
}

/// Parses one line of output as JSON, failing the test with the text when it is not.
func parseJSON(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
    do {
        return try JSONParser.parse(text.trimmingCharacters(in: .whitespacesAndNewlines))
    } catch {
        throw LiveTestError("not JSON (\(error)): \(text)")
    }
}
