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
        if let finding = ProcessArguments.firstNotUTF8() {
            FileHandle.standardError.write(Data((ProcessArguments.notUTF8Message(finding) + "\n").utf8))
            Foundation.exit(64)
        }
        main(nil)
    }
}
