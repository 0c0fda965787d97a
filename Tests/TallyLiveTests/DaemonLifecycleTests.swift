import Foundation
import TallyClient
import TallyProtocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("tallyd lifecycle", .serialized)
struct DaemonLifecycleTests {
    @Test("provision and read a customer through the real daemon")
    func provisionAndGet() throws {
        let daemon = try LiveDaemon().start()
        let created = try daemon.call("provisionCustomer", ["customerId": "acme", "name": "Acme", "email": "ops@acme.io"])
        #expect(created["id"] == "acme")
        #expect(created["name"] == "Acme")
        let read = try daemon.call("getCustomer", ["customerId": "acme"])
        #expect(read == created)
        #expect(try daemon.terminate() == 0)
    }

    @Test("a second daemon on the same data dir refuses to start; the first keeps serving")
    func secondDaemonRefuses() throws {
        let first = try LiveDaemon().start()
        _ = try first.call("provisionCustomer", ["customerId": "c1"])
        // Same data dir and same socket: must fail on the lock and leave the live socket alone.
        let result = try runProgram(Binaries.tallyd, first.arguments)
        #expect(result.status != 0)
        #expect(result.stderr.contains("another tallyd"))
        #expect(FileManager.default.fileExists(atPath: first.socketPath))
        // Same socket, other data dir: must see the live daemon and not unlink its socket.
        let other = TemporaryDirectory()
        let second = try runProgram(Binaries.tallyd, ["serve", "--data-dir", other.path + "/data", "--socket", first.socketPath])
        #expect(second.status != 0)
        #expect(second.stderr.contains("already listening"))
        // Its tallyd.lock deleted: RocksDB's own lock still holds, and the refusal says why.
        try FileManager.default.removeItem(atPath: first.dataDirectory + "/tallyd.lock")
        let sockets = TemporaryDirectory()
        chmod(sockets.path, 0o700)
        let third = try runProgram(Binaries.tallyd, ["serve", "--data-dir", first.dataDirectory, "--socket", sockets.path + "/s"])
        #expect(third.status != 0 && third.stderr.contains("another process holds the database") && third.stderr.contains("tallyd.lock was deleted"), "\(third.stderr)")
        #expect(try first.call("getCustomer", ["customerId": "c1"])["id"] == "c1")
        #expect(try first.terminate() == 0)
    }

    @Test("SIGTERM finishes in-flight commands, removes the socket and exits 0")
    func gracefulShutdown() throws {
        let daemon = try LiveDaemon().start()
        let connection = try daemon.connect()
        let requests = (0..<200).map { i in (method: "provisionCustomer", params: ["customerId": JSONValue.string("c\(i)")] as JSONObject) }
        let results = try connection.callPipelined(requests)
        #expect(results.count == 200)
        #expect(try daemon.terminate() == 0)
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
        try daemon.start()
        #expect(try daemon.call("getStatus")["lastSequence"] == .integer(200))
    }

    @Test("SIGTERM while a client has 1,500 commands pipelined: every line it sent gets a reply (a result, or 2001 for what the stopping daemon did not take), and the results are exactly what was committed")
    func shutdownAnswersEveryLine() throws {
        let daemon = try LiveDaemon().start()
        let socket = try RawSocket(path: daemon.socketPath)
        let count = 1500
        try socket.write(provisionRequestLines(count, prefix: "s"))
        daemon.process?.signal(SIGTERM)
        // Not reading at first: the replies wait in the daemon's buffers, and must still go out
        // before it closes the connection (within its 5-second drain).
        usleep(300_000)
        let replies = try socket.readAllLines().map { try JSONParser.parse($0) }
        #expect(daemon.process?.wait(timeoutSeconds: 20) == 0)
        #expect(replies.count == count, "every line sent before the signal is answered, none dropped at the close: \(replies.count) of \(count)")
        let succeeded = replies.filter { $0["result"] != nil }.count
        let refused = replies.filter { $0.field("error.code") == .integer(2001) }.count
        #expect(succeeded + refused == replies.count, "\(replies.filter { $0["result"] == nil && $0.field("error.code") != .integer(2001) }.prefix(3))")
        try daemon.start()
        #expect(try daemon.call("getStatus")["lastSequence"] == .integer(succeeded), "each success is committed, each 2001 is not")
    }

    @Test("an outside SIGABRT ends the daemon (it crashed, so it must not go on serving); the next start serves what was committed")
    func abortSignalEnds() throws {
        let daemon = try LiveDaemon().start()
        _ = try daemon.call("provisionCustomer", ["customerId": "before-abort"])
        let process = try #require(daemon.process)
        process.signal(SIGABRT)
        let status = process.wait(timeoutSeconds: 20)
        #expect(status == 128 + SIGABRT, "tallyd still running or exited otherwise (\(status.map(String.init) ?? "running")):\n\(daemon.log.suffix(2000))")
        if status == nil { daemon.kill9() }
        try daemon.start()
        #expect(try daemon.call("getCustomer", ["customerId": "before-abort"])["id"] == "before-abort")
    }

    @Test("start-up usage errors: a socket path over 103 bytes (SwiftNIO's limit), --test-clock-start without --test-clock")
    func socketPathTooLong() throws {
        let place = TemporaryDirectory("tallyd-sock")
        let prefix = place.path + "/"
        let path = prefix + String(repeating: "s", count: 104 - prefix.utf8.count)
        #expect(path.utf8.count == 104)
        let result = try runProgram(Binaries.tallyd, ["serve", "--data-dir", place.path + "/data", "--socket", path], timeoutSeconds: 20)
        #expect(result.status == 1 && result.stderr.contains("at most 103"), "\(result)")
        // A test-clock start without the test clock is a usage error, not silently ignored.
        let start = try runProgram(Binaries.tallyd, ["serve", "--data-dir", place.path + "/data", "--test-clock-start", "2026-01-01T00:00:00Z"], timeoutSeconds: 20)
        #expect(start.status == 64 && start.stderr.contains("needs --test-clock"), "\(start)")
        let badStart = try runProgram(Binaries.tallyd, ["serve", "--data-dir", place.path + "/data", "--test-clock", "--test-clock-start", "nope"], timeoutSeconds: 20)
        #expect(badStart.status == 64 && badStart.stderr.contains("--test-clock-start"), "\(badStart)")
        // With serve's usage, not the root command's.
        let level = try runProgram(Binaries.tallyd, ["serve", "--data-dir", place.path + "/data", "--log-level", "loud"], timeoutSeconds: 20)
        #expect(level.status == 64 && level.stderr.contains("--log-level must be one of") && level.stderr.contains("Usage: tallyd serve"), "\(level)")
    }

    @Test("a stale socket left by a crash is cleaned up on start")
    func staleSocket() throws {
        let daemon = try LiveDaemon().start()
        daemon.kill9()
        #expect(FileManager.default.fileExists(atPath: daemon.socketPath))
        try daemon.start()
        #expect(try daemon.call("getStatus")["version"] != nil)
    }

    @Test("tallyd's sockets (the listening one and each client's) are close-on-exec, so a process it spawns on a crash (swift-backtrace) cannot keep them open")
    func socketsCloseOnExec() throws {
        let daemon = try LiveDaemon().start()
        let client = try daemon.connect()
        _ = try client.call("getStatus")
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(daemon.pid)/fd")
        var sockets = 0
        for fd in fds {
            guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(daemon.pid)/fd/\(fd)"), link.hasPrefix("socket:") else { continue }
            let info = try String(contentsOfFile: "/proc/\(daemon.pid)/fdinfo/\(fd)", encoding: .utf8)
            let flags = info.split(separator: "\n").first { $0.hasPrefix("flags:") }.flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8) } ?? 0
            #expect(flags & 0o2000000 != 0, "socket fd \(fd) is not close-on-exec: \(info)")
            sockets += 1
        }
        #expect(sockets >= 2, "the listening socket and the client's")
        client.close()
        #expect(try daemon.terminate() == 0)
    }

    @Test("socket is 0600 and the data dir 0700")
    func permissions() throws {
        let daemon = try LiveDaemon().start()
        var info = stat()
        #expect(stat(daemon.socketPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(stat(daemon.dataDirectory, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o700)
    }

    @Test("a socket directory open to other users is refused")
    func publicSocketDirectoryRefused() throws {
        let dir = TemporaryDirectory()
        chmod(dir.path, 0o755)
        let result = try runProgram(Binaries.tallyd, ["serve", "--data-dir", dir.path + "/data", "--socket", dir.path + "/tallyd.sock"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("other users"))
    }
}
