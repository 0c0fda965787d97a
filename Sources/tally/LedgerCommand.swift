import ArgumentParser

/// `tally ledger …`: the raw event log.
struct LedgerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "Read the raw event log.",
        subcommands: [LedgerTailCommand.self])
}
