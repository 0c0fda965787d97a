import Foundation
import TallyProtocol
import Testing

/// Clients that are not ours: `socat` by hand, and the standard-library Python example.
/// CI installs both; a test is skipped (with the reason shown) only where the tool is absent.
@Suite("external clients against the real daemon", .sharedDaemon)
struct ExternalClientTests {
    let daemon: LiveDaemon

    init() throws { daemon = try SharedDaemon.get() }

    static let socatPath = findExecutable("socat")
    static let pythonPath = findExecutable("python3")
    static var pythonClient: String { repositoryRoot() + "/examples/python/tally_client.py" }

    @Test(
        "socat - UNIX-CONNECT:<socket> provisions and reads a customer",
        .enabled(if: socatPath != nil, "socat is not installed (CI installs it: apt-get install socat)"))
    func socat() throws {
        let socat = try #require(Self.socatPath)
        let customer = uniqueID("socat")
        let input = """
            {"jsonrpc":"2.0","id":1,"method":"provisionCustomer","params":{"customerId":"\(customer)","name":"By Hand","metadata":{"via":"socat"}}}
            {"jsonrpc":"2.0","id":2,"method":"getCustomer","params":{"customerId":"\(customer)"}}

            """
        let result = try runProgram(socat, ["-t", "2", "-", "UNIX-CONNECT:" + daemon.socketPath], stdin: input, timeoutSeconds: 20)
        #expect(result.status == 0, "socat failed: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == 2, "two reply lines expected, got: \(result.stdout)")
        let created = expectResult(try parseJSON(lines[0]), id: 1)
        let read = expectResult(try parseJSON(lines[1]), id: 2)
        #expect(created["id"] == .string(customer))
        #expect(created["name"] == "By Hand")
        #expect(read == created)
        #expect(try daemon.call("getCustomer", ["customerId": .string(customer)])["metadata"] == ["via": "socat"])
    }

    @Test(
        "socat with a last line that has no newline: that line is not run and its -32700 reply says why; a line of spaces is a keep-alive",
        .enabled(if: socatPath != nil, "socat is not installed (CI installs it: apt-get install socat)"))
    func socatUnterminatedLastLine() throws {
        let socat = try #require(Self.socatPath)
        let customer = uniqueID("socat-nl")
        // As `printf '%s' '{…}' | socat - UNIX-CONNECT:…` sends it: a status line, blanks, then a
        // last request without its "\n".
        let input = #"{"jsonrpc":"2.0","id":1,"method":"getStatus"}"# + "\n   \t\n"
            + #"{"jsonrpc":"2.0","id":2,"method":"provisionCustomer","params":{"customerId":"\#(customer)"}}"#
        let result = try runProgram(socat, ["-t", "2", "-", "UNIX-CONNECT:" + daemon.socketPath], stdin: input, timeoutSeconds: 20)
        #expect(result.status == 0, "socat failed: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == 2, "a reply to the status line and one about the last line expected, got: \(result.stdout)")
        expectResult(try parseJSON(lines[0]), id: 1)
        expectError(try parseJSON(lines[1]), code: -32700, id: .null, messageContains: "without its")
        #expect(throws: (any Error).self) { try daemon.call("getCustomer", ["customerId": .string(customer)]) }
    }

    @Test(
        "the Python example client provisions and reads a customer",
        .enabled(if: pythonPath != nil, "python3 is not installed"))
    func python() throws {
        let python = try #require(Self.pythonPath)
        #expect(FileManager.default.fileExists(atPath: Self.pythonClient), "missing \(Self.pythonClient)")
        let customer = uniqueID("py")
        let provisioned = try runProgram(
            python,
            [Self.pythonClient, "--socket", daemon.socketPath, "provision", customer, "--name", "Snake Oil", "--email", "py@x.io", "--metadata", "lang=python"],
            timeoutSeconds: 20)
        #expect(provisioned.status == 0, "stderr: \(provisioned.stderr)")
        let both = try parseJSON(provisioned.stdout)
        #expect(both.field("provisioned.id") == .string(customer))
        #expect(both.field("provisioned.name") == "Snake Oil")
        #expect(both.field("customer.email") == "py@x.io")
        #expect(both.field("customer.metadata.lang") == "python")

        let got = try runProgram(python, [Self.pythonClient, "--socket", daemon.socketPath, "get", customer], timeoutSeconds: 20)
        #expect(got.status == 0, "stderr: \(got.stderr)")
        let customerJSON = try parseJSON(got.stdout)
        #expect(customerJSON == (try daemon.call("getCustomer", ["customerId": .string(customer)])))

        // TALLY_SOCKET instead of --socket; an RPC error exits 1 with code and reason on stderr.
        let missing = try runProgram(python, [Self.pythonClient, "get", uniqueID("nobody")], environment: ["TALLY_SOCKET": daemon.socketPath], timeoutSeconds: 20)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("1001") && missing.stderr.contains("CUSTOMER_NOT_FOUND"), "stderr: \(missing.stderr)")
        #expect(missing.stdout.isEmpty)

        // No daemon: exit 2 with a hint.
        let nowhere = TemporaryDirectory()
        let unreachable = try runProgram(python, [Self.pythonClient, "--socket", nowhere.path + "/none.sock", "get", "x"], timeoutSeconds: 20)
        #expect(unreachable.status == 2)
        #expect(unreachable.stderr.contains("hint"), "stderr: \(unreachable.stderr)")
    }
}
