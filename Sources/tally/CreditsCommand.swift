import ArgumentParser
import TallyProtocol

/// `tally credits …`: grant, void and read credits.
struct CreditsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credits",
        abstract: "Grant and void credits; show balances, grants, the credit ledger, credit usage and auto-recharge.",
        subcommands: [
            CreditsGrantCommand.self, CreditsVoidCommand.self, CreditsBalanceCommand.self, CreditsGrantsCommand.self,
            CreditsLedgerCommand.self, CreditsUsageCommand.self, CreditsAutoRechargeCommand.self,
        ])

    /// A CreditGrant for people: its fields, the important ones first.
    static func renderGrant(_ grant: JSONValue) -> String {
        var rows = Display.fields(
            grant.objectValue ?? [:],
            leading: [
                "grantId", "customerId", "currencyId", "resourceId", "status", "grantType", "sourceType", "amount", "consumedAmount",
                "remainingAmount", "overdraftRepaid", "priority", "effectiveAt", "expireAt", "voidedAt", "displayName",
            ],
            excluding: ["duplicate"])
        if grant["duplicate"] == true { rows.append(("duplicate", "true (the original result; nothing was added)")) }
        return TableFormatter.keyValue(rows)
    }

    /// Grants as a table, one row each.
    static func grantsTable(_ grants: [JSONValue]) -> TableFormatter {
        var table = TableFormatter(columns: [
            .init("GRANT"), .init("STATUS"), .init("TYPE"), .init("SOURCE"), .init("CURRENCY"), .init("RESOURCE"),
            .init("AMOUNT", alignment: .right), .init("CONSUMED", alignment: .right), .init("REMAINING", alignment: .right),
            .init("PRIORITY", alignment: .right), .init("EFFECTIVE"), .init("EXPIRES"), .init("NAME"),
        ])
        for grant in grants {
            table.append([
                Display.cell(grant["grantId"]), Display.cell(grant["status"]), Display.cell(grant["grantType"]), Display.cell(grant["sourceType"]),
                Display.cell(grant["currencyId"]), Display.cell(grant["resourceId"]), Display.cell(grant["amount"]),
                Display.cell(grant["consumedAmount"]), Display.cell(grant["remainingAmount"]), Display.cell(grant["priority"]),
                Display.cell(grant["effectiveAt"]), Display.cell(grant["expireAt"]), Display.cell(grant["displayName"]),
            ])
        }
        return table
    }
}
