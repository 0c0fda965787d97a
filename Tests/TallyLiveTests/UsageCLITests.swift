import Foundation
import TallyProtocol
import Testing

/// The metering commands of `tally` (currencies, features, plans, subscriptions, usage, events,
/// entitlements) against the real daemon.
@Suite("tally metering CLI against the real daemon", .sharedDaemon)
struct UsageCLITests {
    let daemon: LiveDaemon

    init() throws { daemon = try SharedDaemon.get() }

    /// Runs `tally ARGS --socket <daemon>` (the socket option goes before a `--` terminator).
    func tally(_ arguments: [String], stdin: String? = nil) throws -> ProcessResult {
        var arguments = arguments
        arguments.insert(contentsOf: ["--socket", daemon.socketPath], at: arguments.firstIndex(of: "--") ?? arguments.count)
        return try runProgram(Binaries.tally, arguments, stdin: stdin, timeoutSeconds: 30)
    }

    /// Runs and expects exit `status` (0 by default), returning stdout.
    func tallyOK(_ arguments: [String], status: Int32 = 0, stdin: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let result = try tally(arguments, stdin: stdin)
        #expect(
            result.status == status, "tally \(arguments.joined(separator: " ")) exited \(result.status), expected \(status):\n\(result.stdout)\n\(result.stderr)",
            sourceLocation: sourceLocation)
        return result.stdout
    }

    /// A customer on a plan granting `feature` up to `limit` a month (through the CLI).
    func customerOnPlan(feature: String, limit: String) throws -> (customer: String, plan: String, subscription: String) {
        let customer = uniqueID("ucli")
        let plan = uniqueID("plan")
        let subscription = uniqueID("sub")
        _ = try tallyOK(["customers", "provision", customer])
        _ = try tallyOK(["plans", "define", plan, "--name", "Plan \(plan)", "--entitlement", "\(feature):\(limit):MONTH"])
        _ = try tallyOK(["subscriptions", "provision", customer, plan, "--id", subscription])
        return (customer, plan, subscription)
    }

    /// A new METERED feature and a new customer (through the CLI).
    func meteredFeatureAndCustomer() throws -> (feature: String, customer: String) {
        let feature = uniqueID("feat")
        _ = try tallyOK(["features", "define", feature, "--type", "METERED"])
        let customer = uniqueID("ucli")
        _ = try tallyOK(["customers", "provision", customer])
        return (feature, customer)
    }

    @Test("currencies, features, plans and subscriptions are defined through the CLI")
    func catalog() throws {
        let currency = uniqueID("cur")
        let text = try tallyOK(["currencies", "define", currency, "--name", "Credits", "--symbol", "¢"])
        #expect(text.contains(currency) && text.contains("Credits"), "\(text)")

        let feature = uniqueID("feat")
        let defined = try parseJSON(try tallyOK([
            "features", "define", feature, "--type", "metered", "--name", "API calls", "--unit", "calls",
            "--meter-event", "request", "--aggregation", "sum", "--field", "bytes",
            "--filter", "method:IN:GET,POST", "--filter", "region:EXISTS", "--filter", "path:NOT_EQUALS:/a,b",
            "--credit-currency", currency, "--credit-per-unit", "0.5", "--json",
        ]))
        #expect(defined["featureId"] == .string(feature))
        #expect(defined["type"] == "METERED")
        #expect(defined["meter"]?["eventName"] == "request")
        #expect(defined["meter"]?["aggregation"] == "SUM")
        #expect(defined["meter"]?["field"] == "bytes")
        #expect(defined["meter"]?["filters"] == [["key": "method", "op": "IN", "values": ["GET", "POST"]], ["key": "region", "op": "EXISTS"], ["key": "path", "op": "NOT_EQUALS", "values": ["/a,b"]]])
        #expect(defined["creditCost"] == ["currencyId": .string(currency), "amountPerUnit": "0.5"])
        let human = try tallyOK(["features", "define", uniqueID("flag"), "--type", "BOOLEAN", "--name", "SSO"])
        #expect(human.contains("BOOLEAN") && human.contains("SSO"), "\(human)")

        let plan = uniqueID("plan")
        _ = try tallyOK(["features", "define", "other-\(plan)", "--type", "METERED"])
        _ = try tallyOK(["features", "define", "third-\(plan)", "--type", "BOOLEAN"])
        let planText = try tallyOK([
            "plans", "define", plan, "--name", "Pro", "--entitlement", "\(feature):1000:MONTH", "--entitlement", "other-\(plan):unlimited",
            "--entitlement", "third-\(plan)",
        ])
        #expect(planText.contains("FEATURE") && planText.contains("unlimited") && planText.contains("MONTH"), "\(planText)")
        let planJSON = try parseJSON(try tallyOK([
            "plans", "define", plan, "--name", "Pro", "--entitlement", "\(feature):1000:MONTH", "--entitlement", "other-\(plan):unlimited", "--json",
        ]))
        #expect(planJSON["entitlements"] == [
            ["featureId": .string(feature), "hasAccess": true, "hasUnlimitedUsage": false, "usageLimit": "1000", "resetPeriod": "MONTH"],
            ["featureId": .string("other-\(plan)"), "hasAccess": true, "hasUnlimitedUsage": true],
        ])

        let customer = uniqueID("ucli")
        _ = try tallyOK(["customers", "provision", customer])
        let subscription = uniqueID("sub")
        let provisioned = try parseJSON(try tallyOK(["subscriptions", "provision", customer, plan, "--id", subscription, "--status", "trial", "--json"]))
        #expect(provisioned["id"] == .string(subscription))
        #expect(provisioned["status"] == "TRIAL")
        // A trial grants the plan (the credit-backed feature would need credits: check the other one).
        _ = try tallyOK(["entitlements", "check", customer, "other-\(plan)"])
        let canceled = try tallyOK(["subscriptions", "cancel", subscription])
        #expect(canceled.contains("CANCELED") && canceled.contains("canceledAt"), "\(canceled)")
        let after = try tally(["entitlements", "check", customer, "other-\(plan)"])
        #expect(after.status == 3 && after.stdout.contains("NO_FEATURE_ENTITLEMENT"), "\(after.stdout)")

        // Bad usage is caught before anything is sent: exit 64.
        for arguments in [
            ["features", "define", "x", "--type", "METERED", "--meter-event", "e"],
            ["features", "define", "x", "--type", "METERED", "--meter-event", "e", "--aggregation", "COUNT", "--filter", "k:LIKE:v"],
            ["features", "define", "x", "--type", "GAUGE"],
            ["plans", "define", "p", "--name", "P", "--entitlement", "f:lots"],
            ["usage", "report", "c", "f", "ten"],
        ] {
            let result = try tally(arguments)
            #expect(result.status == 64, "\(arguments): \(result.status) \(result.stderr)")
        }
    }

    @Test("usage report prints the measurement id, delta, current usage and limit; --set and --json")
    func report() throws {
        let feature = uniqueID("feat")
        _ = try tallyOK(["features", "define", feature, "--type", "METERED"])
        let (customer, _, _) = try customerOnPlan(feature: feature, limit: "100")

        let text = try tallyOK(["usage", "report", customer, feature, "12.5", "--dimension", "region=eu", "--idempotency-key", "k1"])
        for fragment in ["measurement", "delta", "12.5", "currentUsage", "usageLimit", "100"] {
            #expect(text.contains(fragment), "missing \(fragment) in:\n\(text)")
        }
        let set = try parseJSON(try tallyOK(["usage", "report", customer, feature, "40", "--set", "--json"]))
        #expect(set["currentUsage"] == "40")
        #expect(set["measurement"]?["delta"] == "27.5")
        #expect(set["measurement"]?["updateBehavior"] == "SET")
        #expect(set["usageLimit"] == "100")
        let negative = try parseJSON(try tallyOK(["usage", "report", customer, feature, "--json", "--", "-5"]))
        #expect(negative["currentUsage"] == "35")
        let again = try tallyOK(["usage", "report", customer, feature, "12.5", "--dimension", "region=eu", "--idempotency-key", "k1"])
        #expect(again.contains("duplicate"), "\(again)")

        let missing = try tally(["usage", "report", uniqueID("ghost"), feature, "1"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("CUSTOMER_NOT_FOUND"), "\(missing.stderr)")
    }

    @Test("stored text with control characters (an escape sequence in a dimension value, an id) is shown escaped in charts and error messages too, never sent raw to the terminal; a series without the grouped key is labelled \"\"")
    func controlCharactersEscaped() throws {
        let (feature, customer) = try meteredFeatureAndCustomer()
        _ = try tallyOK(["usage", "report", customer, feature, "4", "--timestamp", "2026-03-01T10:00:00Z", "--dimension", "model=x\u{1B}[31mRED\tz"])
        _ = try tallyOK(["usage", "report", customer, feature, "2", "--timestamp", "2026-03-01T11:00:00Z"])
        let text = try tallyOK(["usage", "history", customer, feature, "--start", "2026-03-01T00:00:00Z", "--group-by", "model"])
        #expect(!text.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\t" }, "raw control characters in:\n\(text)")
        #expect(text.contains(#"model=x\u{1B}[31mRED\tz"#) && text.contains(#"model="""#), "\(text)")
        let missing = try tally(["customers", "get", "zz\u{1B}[31mred"])
        #expect(missing.status == 1 && !missing.stderr.unicodeScalars.contains("\u{1B}") && missing.stderr.contains(#"zz\u{1B}[31mred"#), "\(missing.stderr)")
    }

    @Test("usage history shows a table and a sparkline per series; --group-by adds tag columns")
    func history() throws {
        let (feature, customer) = try meteredFeatureAndCustomer()
        let beforeReports = try daemon.lastSequence()
        let reports: [(String, String, String)] = [
            ("2026-03-01T10:00:00Z", "eu", "1"), ("2026-03-01T11:30:00Z", "eu", "4"), ("2026-03-01T13:05:00Z", "us", "8"),
        ]
        for (timestamp, region, value) in reports {
            _ = try tallyOK(["usage", "report", customer, feature, value, "--timestamp", timestamp, "--dimension", "region=\(region)"])
        }

        let text = try tallyOK(["usage", "history", customer, feature, "--start", "2026-03-01T00:00:00Z", "--end", "2026-03-02T00:00:00Z", "--granularity", "hour"])
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("TIMESTAMP") == true && lines.first?.contains("VALUE") == true && lines.first?.contains("EVENTS") == true, "\(text)")
        #expect(text.contains("2026-03-01T10:00:00.000Z") && text.contains("2026-03-01T13:00:00.000Z"), "\(text)")
        // 10:00, 11:00, (12:00 empty), 13:00 on the hour axis: four columns, the empty one a gap.
        let spark = try #require(lines.first { $0.contains("▁") || $0.contains("█") }, "no sparkline in:\n\(text)")
        #expect(spark.contains("█"), "the peak is a full block: \(spark)")
        #expect(spark.contains("·"), "the empty hour is a gap: \(spark)")
        #expect(text.contains("total 13") && text.contains("peak 8"), "\(text)")

        let grouped = try tallyOK(["usage", "history", customer, feature, "--start", "2026-03-01T00:00:00Z", "--group-by", "region"])
        #expect(grouped.split(separator: "\n").first?.contains("REGION") == true, "\(grouped)")
        #expect(grouped.contains("region=eu") && grouped.contains("region=us"), "\(grouped)")

        let json = try parseJSON(try tallyOK(["usage", "history", customer, feature, "--start", "2026-03-01T00:00:00Z", "--group-by", "region", "--json"]))
        let direct = try daemon.call("getUsageHistory", [
            "customerId": .string(customer), "featureId": .string(feature), "startDate": "2026-03-01T00:00:00Z", "granularity": "DAY", "groupBy": ["region"],
        ])
        #expect(json == direct)

        // The peak is chosen exactly: these differ only in the 12th fractional digit of 10^19.
        let (wide, wideCustomer) = try meteredFeatureAndCustomer()
        for (day, value) in [("01", "10000000000000000000.000000000002"), ("02", "10000000000000000000.000000000003"), ("03", "10000000000000000000.000000000001")] {
            _ = try tallyOK(["usage", "report", wideCustomer, wide, value, "--timestamp", "2026-03-\(day)T10:00:00Z"])
        }
        let peaked = try tallyOK(["usage", "history", wideCustomer, wide, "--start", "2026-03-01T00:00:00Z", "--end", "2026-03-04T00:00:00Z"])
        #expect(peaked.contains("peak 10000000000000000000.000000000003"), "\(peaked)")

        let empty = try tallyOK(["usage", "history", customer, feature, "--start", "2020-01-01T00:00:00Z", "--end", "2020-02-01T00:00:00Z"])
        #expect(empty.contains("no usage"), "\(empty)")

        // --as-of-sequence: as the ledger stood after the first report (found in the log; other
        // tests of the suite append beside this one).
        var cursor = beforeReports, found: Int?
        while found == nil {
            let page = try daemon.call("readLedger", ["after": .integer(cursor), "limit": 1000])["events"]?.arrayValue ?? []
            guard let last = page.last?["sequence"]?.intValue else { break }
            found = page.first { $0["type"] == "USAGE_REPORTED" && $0.field("data.customerId") == .string(customer) }?["sequence"]?.intValue
            cursor = last
        }
        let first = try #require(found)
        let then = try tallyOK(["usage", "history", customer, feature, "--start", "2026-03-01T00:00:00Z", "--as-of-sequence", String(first)])
        #expect(then.contains("total 1") && !then.contains("total 13") && then.contains("as of sequence \(first)"), "\(then)")
        let refused = try tally(["usage", "history", customer, feature, "--start", "2026-03-01T00:00:00Z", "--as-of", "2026-01-01T00:00:00Z", "--as-of-sequence", "1"])
        #expect(refused.status != 0 && refused.stderr.contains("not both"), "\(refused)")
    }

    /// A feature counting raw events of a new name, and a new customer, defined through the CLI.
    func countedEventsFeature() throws -> (event: String, feature: String, customer: String) {
        let event = uniqueID("evt"), feature = uniqueID("feat"), customer = uniqueID("ucli")
        _ = try tallyOK(["features", "define", feature, "--type", "METERED", "--meter-event", event, "--aggregation", "COUNT"])
        _ = try tallyOK(["customers", "provision", customer])
        return (event, feature, customer)
    }

    @Test("events send: batches pipelined, counts, rejections and bad lines by line number, duplicates on resend")
    func eventsSend() throws {
        let (event, feature, customer) = try countedEventsFeature()

        var lines: [String] = []
        for index in 1...20 {
            lines.append(#"{"customerId":"\#(customer)","eventName":"\#(event)","idempotencyKey":"\#(customer)-\#(index)","dimensions":{"n":\#(index)}}"#)
        }
        lines.insert("", at: 3)  // line 4: blank, skipped
        lines.insert("{not json", at: 7)  // line 8
        lines.insert(#"{"customerId":"\#(customer)","eventName":"\#(event)"}"#, at: 12)  // line 13: no idempotencyKey
        lines.insert("[1,2]", at: 15)  // line 16: not an object
        // Line 19: nested deeper than a call may carry it (62 levels; the daemon reads 64 per
        // request): reported on its own, and the events around it are still sent.
        lines.insert(#"{"customerId":"\#(customer)","eventName":"\#(event)","idempotencyKey":"deep","x":"# + String(repeating: "[", count: 61) + String(repeating: "]", count: 61) + "}", at: 18)
        let directory = TemporaryDirectory()
        let path = try writeFile(lines.joined(separator: "\n") + "\n", named: "events.jsonl", in: directory)

        let first = try tally(["events", "send", path, "--batch", "3", "--pipeline", "3"])
        #expect(first.status == 1, "rejections and bad lines exit 1: \(first.stderr)")
        let text = first.stdout
        #expect(text.contains("accepted") && text.contains("20"), "\(text)")
        #expect(text.contains("rejected") && text.contains("invalid"), "\(text)")
        let rejectionRow = try #require(text.split(separator: "\n").first { $0.contains("idempotencyKey") }, "\(text)")
        #expect(rejectionRow.trimmingCharacters(in: .whitespaces).hasPrefix("13 "), "rejection on line 13: \(rejectionRow)")
        // Named by its line only: the daemon's place of the event in its call would be another number.
        #expect(rejectionRow.contains("Invalid params: idempotencyKey is required") && !rejectionRow.contains("events["), "\(rejectionRow)")
        let badJSON = try #require(text.split(separator: "\n").first { $0.contains("not valid JSON") }, "\(text)")
        #expect(badJSON.trimmingCharacters(in: .whitespaces).hasPrefix("8 "), "\(badJSON)")
        #expect(text.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix("16 ") && $0.contains("object") }, "\(text)")
        #expect(text.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix("19 ") && $0.contains("deeper than 61 levels") }, "\(text)")
        #expect(first.stderr.contains("sending"), "a progress line on a non-terminal stderr: \(first.stderr)")
        // The last progress line there has the final counts, not those of an earlier drawing.
        let lastProgress = first.stderr.split(separator: "\n").last { $0.hasPrefix("sending") } ?? ""
        #expect(lastProgress.contains("100%") && lastProgress.contains("accepted 20  duplicates 0  rejected 1  invalid 3"), "\(first.stderr)")

        let history = try daemon.call("getUsageHistory", ["customerId": .string(customer), "featureId": .string(feature), "startDate": "2000-01-01T00:00:00Z", "granularity": "MONTH"])
        let total = history["series"]?.arrayValue?.first?["total"]
        #expect(total == "20", "the meter counted the 20 events: \(history.jsonText)")

        // Again through stdin, as JSON: all duplicates now.
        let again = try parseJSON(try tallyOK(["events", "send", "-", "--json", "--batch", "7"], status: 1, stdin: lines.joined(separator: "\n")))
        #expect(again["accepted"] == 0)
        #expect(again["duplicates"] == 20)
        #expect(again["rejected"] == 1)
        #expect(again["invalid"] == 3)
        #expect(again["lines"] == 25)
        #expect(again["rejections"]?.arrayValue?.first?["line"] == 13)
        #expect(again["rejections"]?.arrayValue?.first?["message"] == "Invalid params: idempotencyKey is required")
        #expect(again["invalidLines"]?.arrayValue?.compactMap { $0["line"] } == [8, 16, 19])

        // A clean file exits 0.
        let clean = try writeFile(lines[0] + "\n", named: "clean.jsonl", in: directory)
        let cleanJSON = try parseJSON(try tallyOK(["events", "send", clean, "--json"]))
        #expect(cleanJSON["duplicates"] == 1 && cleanJSON["rejected"] == 0)
        // One call, answered at once: its progress line drawn on the reply is the final one, not
        // printed again at the end.
        let once = try tally(["events", "send", clean])
        #expect(once.stderr.split(separator: "\n").count { $0.hasPrefix("sending") } == 1, "\(once.stderr)")

        let missing = try tally(["events", "send", directory.path + "/missing.jsonl"])
        #expect(missing.status == 64 && missing.stderr.contains("cannot open"), "\(missing.status) \(missing.stderr)")
    }

    @Test("events send on a narrow terminal: every redraw of the progress line fits its width")
    func eventsSendNarrowTerminal() throws {
        let (event, _, customer) = try countedEventsFeature()
        guard let script = findExecutable("script") else { Issue.record("script(1) is not installed (util-linux)"); return }
        var text = ""
        for index in 0..<3000 { text += #"{"customerId":"\#(customer)","eventName":"\#(event)","idempotencyKey":"narrow-\#(index)"}"# + "\n" }
        let directory = TemporaryDirectory()
        let path = try writeFile(text, named: "narrow.jsonl", in: directory)
        // `script` gives tally a pseudo-terminal, 40 columns wide.
        let command = "stty cols 40; \(Binaries.tally) events send \(path) --socket \(daemon.socketPath) --batch 10 --pipeline 1"
        let run = try runProgram(script, ["-qec", command, "/dev/null"], timeoutSeconds: 60)
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        let redraws = run.stdout.components(separatedBy: "\r\u{1B}[K").dropFirst()
        #expect(!redraws.isEmpty && redraws.contains { $0.hasPrefix("sending [") }, "no progress line drawn: \(run.stdout)")
        for redraw in redraws {
            // (The pseudo-terminal writes a newline as "\r\n", one Character in Swift.)
            let line = redraw.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).first ?? ""
            #expect(line.count < 40, "a redraw wider than the terminal: \(line)")
        }
    }

    @Test("events send keeps many calls in flight on one connection")
    func eventsSendVolume() throws {
        let event = uniqueID("evt")
        let feature = uniqueID("feat")
        _ = try tallyOK(["features", "define", feature, "--type", "METERED", "--meter-event", event, "--aggregation", "SUM", "--field", "n"])
        let customer = uniqueID("ucli")
        _ = try tallyOK(["customers", "provision", customer])
        let count = 5000
        var text = ""
        for index in 0..<count {
            text += #"{"customerId":"\#(customer)","eventName":"\#(event)","idempotencyKey":"v\#(index)","dimensions":{"n":"2"}}"# + "\n"
        }
        let directory = TemporaryDirectory()
        let path = try writeFile(text, named: "volume.jsonl", in: directory)
        let json = try parseJSON(try tallyOK(["events", "send", path, "--batch", "250", "--pipeline", "8", "--json"]))
        #expect(json["accepted"] == .integer(count))
        #expect(json["rejected"] == 0 && json["failed"] == 0)
        let history = try daemon.call("getUsageHistory", ["customerId": .string(customer), "featureId": .string(feature), "startDate": "2000-01-01T00:00:00Z", "granularity": "MONTH"])
        #expect(history["series"]?.arrayValue?.first?["total"] == .string(String(2 * count)))
    }

    @Test("events send keeps every call under the line limit, whatever the events' sizes; an unreadable file is bad usage; a huge --timeout is no crash")
    func eventsSendSizes() throws {
        let (event, _, customer) = try countedEventsFeature()
        // Three events of 600 KB (each refused by the daemon on its own: an unknown field), then
        // 100 small ones. Two large ones in one call would pass the 1 MiB line limit.
        let junk = String(repeating: "x", count: 600_000)
        var lines = (0..<3).map { #"{"customerId":"\#(customer)","eventName":"\#(event)","idempotencyKey":"big\#($0)","junk":"\#(junk)"}"# }
        lines += (0..<100).map { #"{"customerId":"\#(customer)","eventName":"\#(event)","idempotencyKey":"s\#($0)"}"# }
        let directory = TemporaryDirectory()
        let path = try writeFile(lines.joined(separator: "\n") + "\n", named: "sizes.jsonl", in: directory)
        let sent = try tally(["events", "send", path, "--json", "--timeout", "9223372036854775807"])
        #expect(sent.status == 1, "3 rejections: \(sent.stderr)")
        let json = try parseJSON(sent.stdout)
        #expect(json["accepted"] == 100 && json["rejected"] == 3 && json["failed"] == 0 && json["lines"] == 103, "\(json.jsonText.prefix(600))")
        // A directory is not an events file: bad usage (64), not a transport failure (2).
        let unreadable = try tally(["events", "send", directory.path])
        #expect(unreadable.status == 64, "\(unreadable.stderr)")
    }

    @Test("usage import reports a record too large for any call by its number, and imports the others")
    func importOversizedRecord() throws {
        let (feature, customer) = try meteredFeatureAndCustomer()
        let id = uniqueID("imp")
        let huge = String(repeating: "v", count: 1_100_000)
        let ndjson = [
            #"{"id":"\#(id)-1","meter_name":"\#(feature)","customer_name":"\#(customer)","value":2}"#,
            #"{"id":"\#(id)-2","meter_name":"\#(feature)","customer_name":"\#(customer)","value":3,"labels":{"big":"\#(huge)"}}"#,
            #"{"id":"\#(id)-3","meter_name":"\#(feature)","customer_name":"\#(customer)","value":5}"#,
            #"{"id":"\#(id)-4","meter_name":"\#(feature)","customer_name":"\#(customer)","value":1,"colour":"red"}"#,
        ].joined(separator: "\n")
        let result = try tally(["usage", "import", "OCTANE", "-", "--json"], stdin: ndjson)
        #expect(result.status == 1, "\(result.stderr)")
        let json = try parseJSON(result.stdout)
        #expect(json["accepted"] == 2 && json["rejected"]?.arrayValue?.map { $0["record"] } == [2, 4], "\(json.jsonText.prefix(400))")
        // Each rejection is named by its record of the file only (the daemon's index is its place in the call).
        let message = json["rejected"]?.arrayValue?.last?["message"]?.stringValue ?? ""
        #expect(message.contains("colour") && !message.contains("records["), "\(message)")
        let reported = try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(feature), "value": 0])
        #expect(reported["currentUsage"] == "7", "\(reported.jsonText)")
    }

    @Test("entitlements check exits 0 when allowed and 3 when denied; list shows a table")
    func entitlements() throws {
        let feature = uniqueID("feat")
        _ = try tallyOK(["features", "define", feature, "--type", "METERED"])
        let (customer, _, _) = try customerOnPlan(feature: feature, limit: "10")
        _ = try tallyOK(["usage", "report", customer, feature, "8"])

        let allowed = try tallyOK(["entitlements", "check", customer, feature])
        #expect(allowed.contains("ALLOWED") && allowed.contains("8 / 10") && allowed.contains("MONTH"), "\(allowed)")

        let denied = try tally(["entitlements", "check", customer, feature, "--requested", "5"])
        #expect(denied.status == 3, "\(denied.stderr)")
        #expect(denied.stdout.contains("DENIED") && denied.stdout.contains("USAGE_LIMIT_EXCEEDED"), "\(denied.stdout)")
        let deniedJSON = try tally(["entitlements", "check", customer, feature, "--requested", "5", "--json"])
        #expect(deniedJSON.status == 3)
        #expect(try parseJSON(deniedJSON.stdout)["hasAccess"] == false)

        let none = try tally(["entitlements", "check", customer, uniqueID("unknown")])
        #expect(none.status == 3 && none.stdout.contains("FEATURE_NOT_FOUND"), "\(none.stdout)")

        let help = try runProgram(Binaries.tally, ["entitlements", "check", "--help"])
        #expect(help.stdout.contains("3 denied"), "\(help.stdout)")

        let list = try tallyOK(["entitlements", "list", customer])
        let rows = list.split(separator: "\n")
        #expect(rows.first?.contains("FEATURE") == true && rows.first?.contains("LIMIT") == true, "\(list)")
        #expect(rows.contains { $0.contains(feature) && $0.contains("10") && $0.contains("MONTH") }, "\(list)")
        let listJSON = try parseJSON(try tallyOK(["entitlements", "list", customer, "--json"]))
        #expect(listJSON == (try daemon.call("getEntitlements", ["customerId": .string(customer)])))
    }

    @Test("usage import sends NDJSON or a JSON array of vendor records; rejections by record number; re-import is duplicates; usage keys lists dimension keys")
    func importAndKeys() throws {
        let (feature, customer) = try meteredFeatureAndCustomer()
        let id = uniqueID("imp")
        let ndjson = [
            #"{"id":"\#(id)-1","meter_name":"\#(feature)","customer_name":"\#(customer)","value":2,"labels":{"Region":"us"}}"#,
            "",
            #"{"id":"\#(id)-2","meter_name":"\#(feature)","customer_name":"\#(customer)","value":3,"colour":"red"}"#,
            #"{"id":"\#(id)-3","meter_name":"\#(feature)","customer_name":"\#(customer)","value":5,"labels":{"tier":"pro"}}"#,
        ].joined(separator: "\n")
        let first = try tally(["usage", "import", "octane", "-", "--batch", "2"], stdin: ndjson)
        #expect(first.status == 1, "a rejected record makes the exit status 1: \(first.stdout)\(first.stderr)")
        #expect(first.stdout.contains("accepted") && first.stdout.contains("record 2:") && first.stdout.contains("colour"), "\(first.stdout)")
        #expect(first.stdout.contains("(code -32602)"), "the daemon's code is shown: \(first.stdout)")
        let again = try parseJSON(try tallyOK(["usage", "import", "OCTANE", "-", "--json"], status: 1, stdin: ndjson))
        #expect(again["accepted"] == 0 && again["duplicates"] == 2 && again["rejected"]?.arrayValue?.count == 1, "\(again.jsonText)")
        #expect(again.field("rejected")?.arrayValue?.first?["code"] == -32602, "\(again.jsonText)")

        let directory = TemporaryDirectory("import")
        let array = directory.path + "/records.json"
        try #"[{"timestamp":"2026-11-30T00:00:00Z","customerId":"\#(customer)","dimensionId":"\#(feature)","recordValue":"0.25","idempotencyKey":"\#(id)-p"}]"#
            .write(toFile: array, atomically: true, encoding: .utf8)
        let paigo = try parseJSON(try tallyOK(["usage", "import", "PAIGO", array, "--json"]))
        #expect(paigo["accepted"] == 1 && paigo["rejected"] == [], "\(paigo.jsonText)")
        let reported = try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(feature), "value": 0])
        #expect(reported["currentUsage"] == "7.25", "2 + 5 + 0.25: \(reported.jsonText)")

        // 300 records of ~5 KB are more than one request line may hold: the CLI splits the calls.
        let labels = (0..<20).map { #""l\#($0)":"\#(String(repeating: "v", count: 250))""# }.joined(separator: ",")
        let big = (0..<300).map { #"{"id":"\#(id)-big-\#($0)","meter_name":"\#(feature)","customer_name":"\#(customer)","value":0,"labels":{\#(labels)}}"# }.joined(separator: "\n")
        let split = try parseJSON(try tallyOK(["usage", "import", "OCTANE", "-", "--json"], stdin: big))
        #expect(split["accepted"] == 300 && split["rejected"] == [], "\(split.jsonText.prefix(500))")

        let keys = try tallyOK(["usage", "keys", customer])
        #expect(keys.split(separator: "\n") == ["Region"] + (0..<20).map { "l\($0)" }.sorted() + ["tier"], "\(keys)")
        #expect(try tallyOK(["usage", "keys", customer, "--search", "REG"]).split(separator: "\n") == ["Region"])
        let bad = try tally(["usage", "import", "CSV", array])
        #expect(bad.status == 64, "\(bad.stderr)")
        let notJSON = try tally(["usage", "import", "STIGG", "-"], stdin: "{\"id\":\n")
        #expect(notJSON.status == 64 && notJSON.stderr.contains("line 1"), "\(notJSON.stderr)")
    }

    @Test("entitlements grant and revoke a promotional entitlement through the CLI")
    func promotional() throws {
        let (feature, customer) = try meteredFeatureAndCustomer()
        #expect(try tally(["entitlements", "check", customer, feature]).status == 3, "no plan, no promotion: denied")
        let granted = try tallyOK(["entitlements", "grant", customer, feature, "--limit", "50", "--reset-period", "month"])
        #expect(granted.contains(feature) && granted.contains("50"), "\(granted)")
        let allowed = try tallyOK(["entitlements", "check", customer, feature, "--requested", "10"])
        #expect(allowed.contains("ALLOWED") && allowed.contains("0 / 50"), "\(allowed)")
        let unlimited = try parseJSON(try tallyOK(["entitlements", "grant", customer, feature, "--unlimited", "--json"]))
        #expect(unlimited["hasUnlimitedUsage"] == true || unlimited["isUnlimited"] == true, "\(unlimited.jsonText)")
        _ = try tallyOK(["entitlements", "revoke", customer, feature])
        #expect(try tally(["entitlements", "check", customer, feature]).status == 3, "revoked: denied again")
        #expect(try tally(["entitlements", "grant", customer, feature, "--limit", "5", "--unlimited"]).status == 64)
    }
}
