import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally entitlements revoke`: revokePromotionalEntitlement.
struct EntitlementsRevokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke a customer's promotional entitlement to a feature (plans still apply).")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The customer's id.")
    var customerId: String

    @Argument(help: "The feature's id.")
    var featureId: String

    func run() throws {
        let context = TallyCommandContext(global)
        try context.run { connection in
            let result = try connection.call("revokePromotionalEntitlement", ["customerId": .string(customerId), "featureId": .string(featureId)])
            context.output(result) { "revoked the promotional entitlement of \(customerId) to \(featureId)" }
        }
    }
}
