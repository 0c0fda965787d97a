import ArgumentParser

/// `tally events …`: raw events, which the features' meters aggregate into usage.
struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Send raw usage events in bulk.",
        subcommands: [EventsSendCommand.self])
}
