import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally currencies define`: defineCurrency.
struct CurrenciesDefineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "define",
        abstract: "Create a credit currency, or replace its definition (a new version: what the flags omit is not kept).")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The currency's id, e.g. credits.")
    var currencyId: String

    @Option(help: "Display name.")
    var name: String

    @Option(help: "A short symbol, e.g. ¢.")
    var symbol: String?

    @Option(help: "Makes a retry safe: the same key and payload returns the original result.")
    var idempotencyKey: String?

    func run() throws {
        var params: JSONObject = ["currencyId": .string(currencyId), "displayName": .string(name)]
        if let symbol { params["symbol"] = .string(symbol) }
        if let idempotencyKey { params["idempotencyKey"] = .string(idempotencyKey) }

        let context = TallyCommandContext(global)
        try context.run { connection in
            let currency = try connection.call("defineCurrency", params)
            context.output(currency) {
                var text = TableFormatter.keyValue(
                    Display.fields(currency.objectValue ?? [:], leading: ["currencyId", "displayName", "symbol", "version"], excluding: ["duplicate"]))
                if currency["duplicate"] == true { text += "\n(duplicate: the original result; nothing changed)" }
                return text
            }
        }
    }
}
