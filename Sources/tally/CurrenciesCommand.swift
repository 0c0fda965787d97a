import ArgumentParser
import TallyProtocol

/// `tally currencies …`: the credit currencies of the catalog.
struct CurrenciesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "currencies",
        abstract: "Define the credit currencies that credit-backed features are paid in.",
        subcommands: [CurrenciesDefineCommand.self])
}
