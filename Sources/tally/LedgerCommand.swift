import ArgumentParser

/// `tally ledger …`: the raw event log.
struct LedgerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "Read and verify the raw event log.",
        subcommands: [LedgerTailCommand.self, LedgerVerifyCommand.self])
}
