import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally status`: the daemon's getStatus as key/value lines.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the daemon's version, last ledger sequence, data dir and uptime.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let context = TallyCommandContext(global)
        try context.run { connection in
            let result = try connection.call("getStatus")
            context.output(result) {
                TableFormatter.keyValue(
                    Display.fields(
                        result.objectValue ?? [:], leading: ["version", "lastSequence", "dataDir", "uptimeSeconds"]))
            }
        }
    }
}
