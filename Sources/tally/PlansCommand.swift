import ArgumentParser
import TallyProtocol

/// `tally plans …`: the catalog's plans.
struct PlansCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plans",
        abstract: "Define plans: bundles of feature entitlements that subscriptions grant.",
        subcommands: [PlansDefineCommand.self])

    /// A plan for people: its fields, then its entitlements as a table.
    static func render(_ plan: JSONValue) -> String {
        let object = plan.objectValue ?? [:]
        var text = TableFormatter.keyValue(
            Display.fields(object, leading: ["planId", "displayName", "trialDays", "version"], excluding: ["entitlements", "duplicate"]))
        let entitlements = object["entitlements"]?.arrayValue ?? []
        if entitlements.isEmpty {
            text += "\n\nentitlements: none"
        } else {
            var table = TableFormatter(columns: [.init("FEATURE"), .init("ACCESS"), .init("LIMIT", alignment: .right), .init("PERIOD")])
            for entitlement in entitlements {
                let limit = entitlement["hasUnlimitedUsage"] == true ? "unlimited" : Display.cell(entitlement["usageLimit"])
                table.append([
                    Display.cell(entitlement["featureId"]), entitlement["hasAccess"] == false ? "no" : "yes", limit,
                    Display.cell(entitlement["resetPeriod"]),
                ])
            }
            text += "\n\nentitlements:\n" + table.render()
        }
        if plan["duplicate"] == true { text += "\n(duplicate: the original result; nothing changed)" }
        return text
    }
}
