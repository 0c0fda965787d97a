import ArgumentParser
import Foundation
import TallyCore
import TallyProtocol

/// `tally`: the command-line client of `tallyd`.
///
/// Each subcommand lives in its own file, takes the shared ``GlobalOptions`` and does its work
/// through a ``TallyCommandContext``; a new command group is a new file plus one line here.
@main
struct Tally: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tally",
        abstract: "Talk to tallyd, the usage-and-credits ledger, over its Unix socket.",
        discussion: """
            The socket is --socket PATH, else $TALLY_SOCKET, else ./tally-data/tallyd.sock.
            Output is a table for people; --json prints the raw result as one JSON value.
            Exit status: 0 success, 1 the daemon refused the request, 2 the daemon could not be \
            reached or the connection failed, 3 access denied (`entitlements check`), 64 bad usage, \
            74 the output could not be written (a full disk).
            """,
        version: TallyVersion.current,
        subcommands: [
            StatusCommand.self,
            CustomersCommand.self,
            CurrenciesCommand.self, FeaturesCommand.self, PlansCommand.self, SubscriptionsCommand.self,
            UsageCommand.self, EventsCommand.self, EntitlementsCommand.self,
            CreditsCommand.self,
            LedgerCommand.self,
            SnapshotCommand.self,
            CallCommand.self,
        ]
    )

    /// Refuses an argument that is not UTF-8 (exit 64) before parsing: decoded, it would name
    /// another file or path than the one given.
    static func main() {
        // Closed standard output: nothing would reach the user (and the socket would take its
        // descriptor, getting the output written into it). Refused before anything is sent.
        if StandardStreams.reopenClosed().contains(1) {
            FileHandle.standardError.write(Data("error: standard output is closed; nothing tally prints could be read\n".utf8))
            Foundation.exit(74)
        }
        if let finding = ProcessArguments.firstNotUTF8() {
            FileHandle.standardError.write(Data((ProcessArguments.notUTF8Message(finding) + "\n").utf8))
            Foundation.exit(64)
        }
        let arguments = Array(CommandLine.arguments.dropFirst())
        // ArgumentParser's `help` shows the root's help, with success, for a name it does not
        // know: a typo would look like a command without help of its own.
        if let unknown = unknownHelpTopic(arguments) {
            FileHandle.standardError.write(Data("error: no command `\(unknown)` to show help for; `tally help` lists the commands\n".utf8))
            Foundation.exit(64)
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            // Help and the version: written as any output is, so a full disk is 74, not 0.
            if exitCode(for: error) == .success {
                Console.out(fullMessage(for: error))
                Foundation.exit(0)
            }
            if let hint = NegativeValueHint.hint(for: message(for: error), arguments: arguments) {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n" + hint + "\n").utf8))
                Foundation.exit(exitCode(for: error).rawValue)
            }
            exit(withError: error)
        }
    }
}

extension Tally {
    /// The first name after `help` that is not a subcommand of the ones before it, or nil.
    static func unknownHelpTopic(_ arguments: [String]) -> String? {
        guard arguments.first == "help" else { return nil }
        var command: any ParsableCommand.Type = Tally.self
        for name in arguments.dropFirst() where !name.hasPrefix("-") {
            let known = command.configuration.subcommands.first { $0._commandName == name || $0.configuration.aliases.contains(name) }
            guard let known else { return name }
            command = known
        }
        return nil
    }
}

/// ArgumentParser reads `-5` as an option (there is no way to say otherwise for a positional
/// argument): when that made the command line fail, say where a negative value goes.
enum NegativeValueHint {
    static func isNegativeNumber(_ token: String) -> Bool {
        let rest = token.utf8.dropFirst()
        guard token.utf8.first == UInt8(ascii: "-"), let first = rest.first else { return false }
        return (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) || (first == UInt8(ascii: ".") && rest.count > 1)
    }

    /// The hint, with the command line rewritten so (the negative numbers after `--`, at the end),
    /// when the error is a missing positional argument or an unknown option and a negative number
    /// stood among the options. A negative number right after an option may be its value (as
    /// `--threshold -1` is): such a command line gets no hint rather than a wrong one.
    static func hint(for message: String, arguments: [String]) -> String? {
        guard message.hasPrefix("Missing expected argument '<") || message.hasPrefix("Unknown option '-") else { return nil }
        let options = Array(arguments.prefix { $0 != "--" })
        let negatives = options.indices.filter { isNegativeNumber(options[$0]) }
        guard let first = negatives.first else { return nil }
        for index in negatives where index > 0 {
            let before = options[index - 1]
            if before.hasPrefix("-"), !before.contains("="), !isNegativeNumber(before) { return nil }
        }
        let rewritten = options.filter { !isNegativeNumber($0) } + ["--"] + negatives.map { options[$0] } + arguments.dropFirst(options.count + 1)
        return "Hint: '\(options[first])' was read as an option. A negative value goes after `--`, which ends the options: "
            + (["tally"] + rewritten).map(Display.shellQuoted).joined(separator: " ")
    }
}
