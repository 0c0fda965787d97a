import Foundation
import TallyProtocol
import Testing

/// Mutated requests to every kind of method, through the real daemon (Tests/fuzz/requests.py):
/// each gets a result or a clear error, none an internal error or a dropped connection, the
/// daemon keeps running, and the log it wrote replays to exactly its projections.
@Suite("mutation fuzzing through the real daemon", .serialized)
struct FuzzTests {
    static let pythonPath = findExecutable("python3")

    @Test("3 seeds × 1,500 mutated requests: no -32603, no closed connection; the ledger stays consistent across a restart",
          .enabled(if: pythonPath != nil, "python3 is not installed"))
    func mutatedRequests() throws {
        let daemon = try LiveDaemon(extraArguments: ["--test-clock"]).start()
        // Something for the mutated requests to find: customers, a credit-backed feature, a
        // UNIQUE_COUNT meter, a plan with a subscription, a grant.
        let setup: [(String, JSONObject)] = [
            ("provisionCustomer", ["customerId": "acme"]),
            ("provisionCustomer", ["customerId": "c1"]),
            ("defineCurrency", ["currencyId": "cur", "displayName": "C"]),
            ("defineFeature", ["featureId": "f1", "type": "METERED", "creditCost": ["currencyId": "cur", "amountPerUnit": "0.5"]]),
            ("defineFeature", ["featureId": "x", "type": "METERED", "meter": ["eventName": "acme", "aggregation": "UNIQUE_COUNT", "field": "customerId"]]),
            ("definePlan", ["planId": "plan1", "displayName": "P", "entitlements": [["featureId": "f1", "usageLimit": 100, "resetPeriod": "MONTH"]]]),
            ("provisionSubscription", ["customerId": "acme", "planId": "plan1"]),
            ("grantCredits", ["customerId": "acme", "currencyId": "cur", "amount": "50", "grantType": "PAID"]),
        ]
        for (method, params) in setup { _ = try daemon.call(method, params) }
        let script = repositoryRoot() + "/Tests/fuzz/requests.py"
        for seed in 1...3 {
            let run = try runProgram(Self.pythonPath!, [script, daemon.socketPath, String(seed), "1500"], timeoutSeconds: 240)
            #expect(run.status == 0, "seed \(seed):\n\(run.stdout.suffix(3000))\(run.stderr.suffix(2000))")
        }
        let before = try daemon.call("verifyLedger")
        #expect(before["hashChainValid"] == true && before["projectionsMatch"] == true, "\(before.jsonText.prefix(800))")
        #expect(try daemon.terminate() == 0)
        try daemon.start()
        let after = try daemon.call("verifyLedger")
        let appended = try daemon.events(after: Int(before["lastSequence"]?.numberText ?? "0") ?? 0).map { $0["type"]?.stringValue ?? "?" }
        // The restarted test clock starts at the real time, which may be past expiries and
        // activations the fuzzed clock had not reached: those, and only those, are appended at start.
        #expect(appended.allSatisfy { $0 == "CREDITS_EXPIRED" || $0 == "CREDITS_ACTIVATED" }, "appended at start: \(appended)")
        #expect(after["hashChainValid"] == true && after["projectionsMatch"] == true, "\(after.jsonText.prefix(800))")
        #expect(try daemon.terminate() == 0)
    }
}
