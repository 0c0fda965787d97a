import ArgumentParser

/// `tally snapshot …`: online snapshots and their verification.
struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Take and verify snapshots of the ledger.",
        subcommands: [SnapshotCreateCommand.self, SnapshotVerifyCommand.self])
}
