import ArgumentParser
import TallyProtocol

/// `tally features …`: the catalog's features.
struct FeaturesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "features",
        abstract: "Define features: what customers are entitled to and how usage is metered.",
        subcommands: [FeaturesDefineCommand.self])

    /// A feature for people: its fields, meter and credit cost flattened to `meter.eventName` etc.
    static func render(_ feature: JSONValue) -> String {
        var text = TableFormatter.keyValue(
            Display.fields(
                feature.objectValue ?? [:], leading: ["featureId", "displayName", "type", "unit", "version"],
                excluding: ["duplicate"]))
        if feature["duplicate"] == true { text += "\n(duplicate: the original result; nothing changed)" }
        return text
    }
}
