import Foundation
import TallyProtocol
import Testing

/// The `tally` CLI against the real daemon, through `--socket` (or TALLY_SOCKET).
@Suite("tally CLI against the real daemon", .sharedDaemon)
struct CLITests {
    let daemon: LiveDaemon

    init() throws { daemon = try SharedDaemon.get() }

    /// Runs `tally ARGS --socket <daemon>`; TALLY_SOCKET is pointed elsewhere so the flag must win.
    func tally(_ arguments: [String], socket: Bool = true, environment: [String: String] = [:]) throws -> ProcessResult {
        var env = ["TALLY_SOCKET": "/nonexistent/tally.sock"]
        for (key, value) in environment { env[key] = value }
        return try runProgram(Binaries.tally, arguments + (socket ? ["--socket", daemon.socketPath] : []), environment: env, timeoutSeconds: 20)
    }

    /// Runs and expects exit 0, returning stdout.
    func tallyOK(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let result = try tally(arguments)
        #expect(result.status == 0, "tally \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
        return result.stdout
    }

    @Test("tally help NAME: a command's help exits 0; a name that is no command exits 64 saying so, not with the root's help")
    func helpOfUnknownCommand() throws {
        for topic in [["credits", "grant"], ["usage"], []] {
            let shown = try tally(["help"] + topic, socket: false)
            #expect(shown.status == 0 && shown.stdout.contains("USAGE: tally \((topic.isEmpty ? ["<subcommand>"] : topic).joined(separator: " "))"), "help \(topic): \(shown.status) \(shown.stdout.prefix(300))")
        }
        for topic in [["nosuch"], ["credits", "nosuch"]] {
            let refused = try tally(["help"] + topic, socket: false)
            #expect(refused.status == 64 && refused.stderr.contains("no command `nosuch`") && refused.stdout.isEmpty, "help \(topic): \(refused.status) \(refused.stderr) \(refused.stdout.prefix(200))")
        }
    }

    @Test("output that cannot be written is no success: a full disk exits 74 saying so; a reader gone with SIGPIPE ignored ends --follow")
    func unwritableOutput() throws {
        let full = try runProgram("/bin/sh", ["-c", "\(Binaries.tally) status --socket \(daemon.socketPath) > /dev/full"], timeoutSeconds: 20)
        #expect(full.status == 74 && full.stderr.contains("cannot write the output"), "\(full.status): \(full.stderr)")
        for flag in ["--help", "--version"] {  // help is output too
            let lost = try runProgram("/bin/sh", ["-c", "\(Binaries.tally) \(flag) > /dev/full"], timeoutSeconds: 20)
            #expect(lost.status == 74 && lost.stderr.contains("cannot write the output"), "\(flag): \(lost.status): \(lost.stderr)")
        }
        // `head -1` exits after the header; the follower learns it at its next write (the next
        // event), and must end then, not poll forever.
        // (`timeout` ends a follower that would not: status 124 instead of SIGPIPE's 141.)
        let script = """
            set -o pipefail
            (trap '' PIPE; timeout 10 \(Binaries.tally) ledger tail --follow --interval-ms 20 --socket \(daemon.socketPath) | head -1 > /dev/null) 2> /dev/null &
            follower=$!
            sleep 1
            \(Binaries.tally) customers provision \(uniqueID("pipe")) --socket \(daemon.socketPath) > /dev/null
            wait $follower
            """
        let piped = try runProgram("/bin/bash", ["-c", script], timeoutSeconds: 30)
        #expect(piped.status == 141, "the follower did not end as SIGPIPE would: \(piped.status) \(piped.stderr)")
    }

    @Test("tally status shows version, lastSequence, dataDir and uptime; --json parses")
    func status() throws {
        let text = try tallyOK(["status"])
        for key in ["version", "lastSequence", "dataDir", "uptimeSeconds"] {
            #expect(text.contains(key), "missing \(key) in:\n\(text)")
        }
        #expect(text.contains(daemon.dataDirectory))
        let json = try parseJSON(try tallyOK(["status", "--json"]))
        #expect(json["version"] == .string(TallyVersion.current))
        #expect(json["socketPath"] == .string(daemon.socketPath))
        #expect(json["lastSequence"]?.numberText.flatMap { Int($0) } != nil)
    }

    @Test("tally customers provision/get with name, email and metadata; --json has the right fields")
    func provisionAndGet() throws {
        let customer = uniqueID("cli")
        let text = try tallyOK(["customers", "provision", customer, "--name", "CLI Co", "--email", "cli@x.io", "--metadata", "plan=pro", "--metadata", "region=eu=west"])
        for fragment in [customer, "CLI Co", "cli@x.io", "metadata.plan", "pro", "eu=west"] {
            #expect(text.contains(fragment), "missing \(fragment) in:\n\(text)")
        }
        let stored = try daemon.call("getCustomer", ["customerId": .string(customer)])
        #expect(stored["name"] == "CLI Co")
        #expect(stored["metadata"] == ["plan": "pro", "region": "eu=west"])

        let shown = try tallyOK(["customers", "get", customer])
        #expect(shown.contains(customer) && shown.contains("CLI Co") && shown.contains("cli@x.io"), "\(shown)")

        let json = try parseJSON(try tallyOK(["customers", "get", customer, "--json"]))
        #expect(json == stored)
        #expect(json["id"] == .string(customer))
        #expect(json["email"] == "cli@x.io")
        #expect(json["subscriptions"] == [])
        #expect(json["createdAt"]?.stringValue != nil)

        // An upsert through the CLI, as JSON.
        let updated = try parseJSON(try tallyOK(["customers", "provision", customer, "--name", "CLI Co 2", "--json"]))
        #expect(updated["name"] == "CLI Co 2")
        #expect(updated["email"] == "cli@x.io")
        #expect(updated["createdAt"] == stored["createdAt"])

        let missing = try tally(["customers", "get", uniqueID("ghost")])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("CUSTOMER_NOT_FOUND"), "\(missing.stderr)")
    }

    @Test("tally customers list shows the ids; --json parses; --all follows next to the end")
    func list() throws {
        let ids = [uniqueID("list"), uniqueID("list")]
        for id in ids { _ = try daemon.call("provisionCustomer", ["customerId": .string(id), "name": "Listed"]) }
        let table = try tallyOK(["customers", "list", "--limit", "1000"])
        #expect(table.hasPrefix("ID"), "\(table)")
        for id in ids { #expect(table.contains(id), "missing \(id) in:\n\(table)") }

        let json = try parseJSON(try tallyOK(["customers", "list", "--limit", "1000", "--json"]))
        let listed = (json["customers"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
        for id in ids { #expect(listed.contains(id)) }
        #expect(json["next"] == .null)

        // Small pages: the hint names the cursor; --all walks every page and terminates.
        let paged = try tally(["customers", "list", "--limit", "1"])
        #expect(paged.status == 0)
        #expect(paged.stderr.contains("--after"), "\(paged.stderr)")
        #expect(try tally(["customers", "list", "--limit", "5000"]).status == 0, "a limit above the daemon's is capped, as the help says")
        let last = try tally(["customers", "list", "--limit", "1000"])
        #expect(!last.stderr.contains("more:"), "no hint on the last page: \(last.stderr)")
        let all = try parseJSON(try tallyOK(["customers", "list", "--all", "--limit", "2", "--json"]))
        let allIDs = (all["customers"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
        for id in ids { #expect(allIDs.contains(id)) }
        #expect(Set(allIDs).count == allIDs.count)
    }

    @Test("tables: wide glyphs keep the columns aligned; control characters in stored names are escaped, never sent to the terminal")
    func tableWidthAndEscapes() throws {
        let prefix = uniqueID("wide")
        let ascii = "\(prefix)-abcd", wide = "\(prefix)-東京", hostile = "\(prefix)-esc"
        for id in [ascii, wide] { _ = try daemon.call("provisionCustomer", ["customerId": .string(id), "name": "x1"]) }
        _ = try daemon.call("provisionCustomer", ["customerId": .string(hostile), "name": "a\u{1B}[31mred\nline2\ttab"])
        let table = try tallyOK(["customers", "list", "--after", prefix, "--limit", "3"])
        let rows = table.split(separator: "\n").map(String.init)
        #expect(rows.count == 4, "a header and three rows, the newline escaped:\n\(table)")
        #expect(!table.unicodeScalars.contains("\u{1B}") && !table.contains("\t"), "\(table)")
        #expect(table.contains(#"a\u{1B}[31mred\nline2\ttab"#), "\(table)")
        // "東京" is 2 Characters but 4 columns, as wide as "abcd": the name starts 2 Characters earlier.
        let asciiRow = try #require(rows.first { $0.hasPrefix(ascii) }), wideRow = try #require(rows.first { $0.hasPrefix(wide) })
        let asciiAt = try #require(asciiRow.range(of: "x1")).lowerBound, wideAt = try #require(wideRow.range(of: "x1")).lowerBound
        #expect(asciiRow.distance(from: asciiRow.startIndex, to: asciiAt) == wideRow.distance(from: wideRow.startIndex, to: wideAt) + 2, "\(table)")
        let one = try tallyOK(["customers", "get", hostile])
        #expect(!one.unicodeScalars.contains("\u{1B}") && one.contains(#"\n"#), "\(one)")
    }

    @Test("tally ledger tail -n 5 shows the last five events")
    func ledgerTail() throws {
        let prefix = uniqueID("tail")
        for index in 0..<6 { _ = try daemon.call("provisionCustomer", ["customerId": .string("\(prefix)-\(index)")]) }
        let text = try tallyOK(["ledger", "tail", "-n", "5"])
        let lines = text.split(separator: "\n")
        #expect(lines.count == 6, "a header and five rows:\n\(text)")
        #expect(lines.first?.contains("SEQ") == true && lines.first?.contains("TYPE") == true)
        #expect(lines.dropFirst().allSatisfy { $0.contains("CUSTOMER_") }, "\(text)")

        let json = try parseJSON(try tallyOK(["ledger", "tail", "-n", "5", "--json"]))
        let events = try #require(json["events"]?.arrayValue)
        #expect(events.count == 5)
        let sequences = events.compactMap { $0["sequence"]?.numberText.flatMap { Int($0) } }
        #expect(sequences.count == 5)
        #expect(zip(sequences, sequences.dropFirst()).allSatisfy { $1 == $0 + 1 }, "consecutive: \(sequences)")
        #expect(events.allSatisfy { $0["hash"]?.stringValue?.count == 64 })

        // More than one page of the daemon's (at most 1000 per readLedger): the CLI pages.
        // (Renames of one customer: other tests count the customers.)
        for index in 0..<1001 where try daemon.lastSequence() < 1001 { _ = try daemon.call("provisionCustomer", ["customerId": .string("\(prefix)-0"), "name": .string("rename \(index)")]) }
        let many = try parseJSON(try tallyOK(["ledger", "tail", "-n", "1001", "--json"]))
        #expect(many["events"]?.arrayValue?.count == 1001)
    }

    @Test("tally ledger tail --after S shows the n events after S, and with --follow every later one: a follow resumes where it stopped")
    func ledgerTailAfter() throws {
        let prefix = uniqueID("after")
        let start = try daemon.lastSequence()
        for index in 0..<4 { _ = try daemon.call("provisionCustomer", ["customerId": .string("\(prefix)-\(index)")]) }
        func sequences(_ json: JSONValue) -> [Int] { json["events"]?.arrayValue?.compactMap { $0["sequence"]?.numberText.flatMap { Int($0) } } ?? [] }
        // (Other tests append meanwhile: the events after `start` are not all ours.)
        let mine = try daemon.events(after: start).filter { $0.field("data.customerId")?.stringValue?.hasPrefix(prefix) == true }
        let ours = mine.compactMap { $0["sequence"]?.numberText.flatMap { Int($0) } }
        try #require(ours.count == 4, "\(mine.map(\.jsonText))")
        let page = try parseJSON(try tallyOK(["ledger", "tail", "--after", String(start), "-n", "3", "--json"]))
        #expect(sequences(page) == [start + 1, start + 2, start + 3], "\(page.jsonText.prefix(500))")
        let text = try tallyOK(["ledger", "tail", "--after", String(ours[1] - 1), "-n", "1"])
        let rows = text.split(separator: "\n").dropFirst().map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(rows.count == 1 && rows.first?.hasPrefix("\(ours[1]) ") == true, "\(text)")

        // --follow --after: every event after S (more than -n of them), then it waits for more.
        let followed = try runProgram("/bin/sh", ["-c", """
            timeout 3 \(Binaries.tally) ledger tail --follow --json -n 1 --after \(start) --interval-ms 20 --socket \(daemon.socketPath); true
            """])
        let seen = followed.stdout.split(separator: "\n").compactMap { try? JSONParser.parse(Array($0.utf8)) }.compactMap { $0["sequence"]?.numberText.flatMap { Int($0) } }
        #expect(seen.first == start + 1 && zip(seen, seen.dropFirst()).allSatisfy { $1 == $0 + 1 }, "\(followed)")
        #expect(Set(ours).isSubset(of: Set(seen)), "\(ours) not all in \(seen)")

        // A cursor past the end (from before a restore to an older snapshot) is warned about.
        let past = try daemon.lastSequence() + 1_000_000
        let beyond = try runProgram(Binaries.tally, ["ledger", "tail", "--after", String(past), "--socket", daemon.socketPath])
        #expect(beyond.status == 0 && beyond.stderr.contains("warning: the ledger ends at sequence") && beyond.stderr.contains("before --after \(past)"), "\(beyond)")
        #expect(!(try runProgram(Binaries.tally, ["ledger", "tail", "--after", String(start), "-n", "1", "--socket", daemon.socketPath])).stderr.contains("warning"))

        let refused = try runProgram(Binaries.tally, ["ledger", "tail", "--after", "-1", "--socket", daemon.socketPath])
        #expect(refused.status == 64 && refused.stderr.contains("--after"), "\(refused)")
    }

    @Test("tally call getStatus prints the result as JSON")
    func callStatus() throws {
        let json = try parseJSON(try tallyOK(["call", "getStatus"]))
        #expect(json["version"] == .string(TallyVersion.current))
        #expect(json["dataDir"] == .string(daemon.dataDirectory))
        let customer = uniqueID("call")
        let created = try parseJSON(try tallyOK(["call", "provisionCustomer", #"{"customerId":"\#(customer)","name":"Called"}"#, "--json"]))
        #expect(created["id"] == .string(customer))
        #expect(created["name"] == "Called")
    }

    @Test("tally call getCustomer for a missing id exits 1 with the error on stderr")
    func callError() throws {
        let result = try tally(["call", "getCustomer", #"{"customerId":"nope"}"#])
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty, "\(result.stdout)")
        #expect(result.stderr.contains("1001"), "\(result.stderr)")
        #expect(result.stderr.contains("CUSTOMER_NOT_FOUND"), "\(result.stderr)")
        let invalid = try tally(["call", "getCustomer", #"{"customerId":5}"#])
        #expect(invalid.status == 1)
        #expect(invalid.stderr.contains("-32602") && invalid.stderr.contains("customerId"), "\(invalid.stderr)")
    }

    @Test("an unreachable socket exits 2 with a hint")
    func unreachable() throws {
        let empty = TemporaryDirectory()
        let result = try runProgram(Binaries.tally, ["status", "--socket", empty.path + "/missing.sock"], timeoutSeconds: 20)
        #expect(result.status == 2)
        #expect(result.stderr.contains("cannot connect"), "\(result.stderr)")
        #expect(result.stderr.contains("hint:"), "\(result.stderr)")
        #expect(result.stderr.contains("tallyd serve"), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test("--timeout holds for every command, also those that wait an hour by default (ledger verify, snapshot create)")
    func timeoutEverywhere() throws {
        // A socket that takes connections (the kernel's backlog) but never answers.
        let directory = TemporaryDirectory()
        let path = directory.path + "/silent.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8))
            raw[path.utf8.count] = 0
        }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(bound == 0 && listen(fd, 8) == 0)
        for arguments in [["status"], ["ledger", "verify"], ["snapshot", "create", directory.path + "/snap"]] {
            let result = try runProgram(Binaries.tally, arguments + ["--socket", path, "--timeout", "1"], timeoutSeconds: 20)
            #expect(result.status == 2, "\(arguments): \(result)")
        }
    }

    @Test("a negative number for a numeric option gets that option's own message and exit 64, not \"missing value\"")
    func negativeOptionValues() throws {
        let cases: [([String], String)] = [
            (["credits", "balance", "a", "--as-of-sequence", "-1"], "--as-of-sequence"), (["status", "--timeout", "-1"], "--timeout"),
            (["ledger", "tail", "-n", "-3"], "-n"), (["entitlements", "check", "a", "f", "--requested", "-1"], "--requested"),
            (["events", "send", "x.jsonl", "--batch", "-5"], "--batch"), (["plans", "define", "p", "--name", "P", "--trial-days", "-1"], "--trial-days"),
            (["credits", "auto-recharge", "a", "c", "--threshold", "-1"], "--threshold"), (["credits", "auto-recharge", "a", "c", "--target", "-1"], "--target"),
            (["credits", "auto-recharge", "a", "c", "--max-spend", "-1"], "--max-spend"), (["entitlements", "grant", "a", "f", "--limit", "-5"], "--limit"),
            (["features", "define", "f", "--type", "METERED", "--credit-currency", "c", "--credit-per-unit", "-1"], "--credit-per-unit"),
        ]
        for (arguments, option) in cases {
            let result = try tally(arguments)
            #expect(result.status == 64 && result.stderr.contains(option) && !result.stderr.contains("Missing"), "\(arguments): \(result.stderr)")
        }
    }

    @Test("a negative positional value (read as an option) gets a hint with the command line that works; amounts the daemon would refuse exit 64 before anything is sent")
    func negativePositionalsAndAmounts() throws {
        for (arguments, rewritten) in [(["credits", "grant", "a", "c", "-5"], "-- -5"), (["usage", "report", "a", "f", "-2", "--strict"], "--strict --socket")] {
            let result = try tally(arguments)
            #expect(result.status == 64 && result.stderr.contains("Hint: '\(arguments[4])' was read as an option") && result.stderr.contains(rewritten), "\(arguments): \(result.stderr)")
        }
        // Rewritten as the hint says, the value reaches the command's own check.
        let moved = try tally(["credits", "grant", "a", "c", "--", "-5"])
        #expect(moved.status == 64 && moved.stderr.contains("AMOUNT must be greater than 0") && !moved.stderr.contains("Hint"), "\(moved.stderr)")
        // No socket to reach (`tally` would exit 2 trying): 64 means refused before connecting.
        let refused: [([String], String)] = [
            (["usage", "report", "a", "f", "1.0000000000001"], "12 fractional digits"), (["usage", "report", "a", "f", "1000000000000000000000"], "out of range"),
            (["usage", "report", "a", "f", "--set", "--", "-2"], "VALUE with --set must not be negative"),
            (["entitlements", "grant", "a", "f", "--limit", "0.0000000000001"], "12 fractional digits"),
            (["entitlements", "check", "a", "f", "--requested", "1.0000000000001"], "12 fractional digits"),
            (["features", "define", "f", "--type", "METERED", "--credit-currency", "c", "--credit-per-unit", "0"], "--credit-per-unit must be greater than 0"),
            (["plans", "define", "p", "--name", "P", "--entitlement", "f:1.0000000000001"], "12 fractional digits"),
        ]
        for (arguments, reason) in refused {
            let result = try tally(arguments, socket: false)
            #expect(result.status == 64 && result.stderr.contains(reason), "\(arguments): \(result.status) \(result.stderr)")
        }
    }

    @Test("CLI details: --metadata given twice for a key is refused; an --entitlement limit may be 1e3; the customers list 'more:' line is a command that runs; the features define example continues its lines")
    func cliDetails() throws {
        let twice = try tally(["customers", "provision", "x", "--metadata", "a=1", "--metadata", "a=2"], socket: false)
        #expect(twice.status == 64 && twice.stderr.contains("'a' twice"), "\(twice.stderr)")

        let feature = try daemon.newMeteredFeature()
        let plan = try parseJSON(try tallyOK(["plans", "define", uniqueID("plan"), "--name", "P", "--entitlement", "\(feature):1e3:MONTH", "--json"]))
        #expect(plan["entitlements"]?.arrayValue?.first?["usageLimit"] == "1000", "\(plan.jsonText)")

        let prefix = uniqueID("spaced")
        for suffix in [" a", " b"] { _ = try tallyOK(["customers", "provision", prefix + suffix]) }
        let page = try tally(["customers", "list", "--after", prefix, "--limit", "1"])
        #expect(page.status == 0 && page.stderr.contains("--after '\(prefix) a'"), "\(page.stderr)")

        let help = try tally(["features", "define", "--help"], socket: false)
        let example = help.stdout.split(separator: "\n").filter { $0.contains("api-calls") || $0.contains("--meter-event request") }
        #expect(example.count == 2 && example.allSatisfy { $0.hasSuffix("\\") }, "each line of the example but the last ends with a backslash:\n\(help.stdout)")
    }

    @Test("tally with standard output closed exits 74 before sending anything (its output would have gone into the socket, which takes descriptor 1)")
    func standardOutputClosed() throws {
        let customer = uniqueID("closed")
        let result = try runProgram("/bin/sh", ["-c", #"exec "$0" "$@" >&-"#, Binaries.tally, "customers", "provision", customer, "--socket", daemon.socketPath], timeoutSeconds: 20)
        #expect(result.status == 74 && result.stderr.contains("standard output is closed"), "\(result)")
        expectRPCError(code: 1001) { _ = try daemon.call("getCustomer", ["customerId": .string(customer)]) }
    }

    @Test("tallyd and tally refuse (exit 64) an argument that is not UTF-8, instead of using the path Swift decodes it to")
    func argumentsNotUTF8() throws {
        let place = TemporaryDirectory()
        // The shell passes the byte 0xFF as is; Swift would read it as U+FFFD, another name.
        let script = #"exec "$0" "$@" "$(printf '%s/data\377' "$PLACE")""#
        for (binary, arguments) in [(Binaries.tallyd, ["serve", "--data-dir"]), (Binaries.tallyd, ["replay", "--data-dir"]), (Binaries.tally, ["snapshot", "create"])] {
            let result = try runProgram("/bin/sh", ["-c", script, binary] + arguments, environment: ["PLACE": place.path], timeoutSeconds: 20)
            #expect(result.status == 64 && result.stderr.contains("not valid UTF-8") && result.stderr.contains(#"data\xFF"#), "\(arguments): \(result)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: place.path).isEmpty, "nothing is created under another name")
    }

    @Test("TALLY_SOCKET is used when --socket is absent")
    func environmentSocket() throws {
        let result = try tally(["status", "--json"], socket: false, environment: ["TALLY_SOCKET": daemon.socketPath])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try parseJSON(result.stdout)["socketPath"] == .string(daemon.socketPath))
        // And --socket wins over it (tally() points TALLY_SOCKET at a path that does not exist).
        let flagWins = try tally(["status", "--json"])
        #expect(flagWins.status == 0, "\(flagWins.stderr)")
        // An empty --socket is bad usage, not the default socket.
        let empty = try tally(["status", "--socket", ""], socket: false, environment: ["TALLY_SOCKET": daemon.socketPath])
        #expect(empty.status == 64 && empty.stderr.contains("--socket must not be empty"), "\(empty.status) \(empty.stderr)")
        // A path that is no socket at all is named as what it is, not as a stale socket.
        let place = TemporaryDirectory()
        let file = place.path + "/file"
        #expect(FileManager.default.createFile(atPath: file, contents: Data()))
        for (path, kind) in [(file, "a regular file"), (place.path, "a directory")] {
            let wrong = try tally(["status", "--socket", path], socket: false)
            #expect(wrong.status == 2 && wrong.stderr.contains("\(path) is \(kind), not a socket") && !wrong.stderr.contains("stale"), "\(wrong.stderr)")
        }
    }
}
