import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally credits auto-recharge`: getAutoRecharge, or setAutoRecharge merged over the current configuration.
struct CreditsAutoRechargeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auto-recharge",
        abstract: "Show or change a customer's credit auto-recharge for a currency.",
        discussion: """
            Without options: the current configuration. With options: the given fields change and the \
            others keep their current values, so `--disable` alone turns recharging off and keeps the \
            threshold, target and limit. When the balance drops below --threshold after a deduction, a \
            PAID grant tops it up to --target, unless this month's recharges would exceed --max-spend. \
            The first configuration of a customer and currency is enabled unless --disable is given.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The customer's id.")
    var customerId: String

    @Argument(help: "The currency's id.")
    var currencyId: String

    @Flag(help: "Turn recharging on.")
    var enable = false

    @Flag(help: "Turn recharging off (the configuration is kept).")
    var disable = false

    @Option(parsing: .unconditional, help: ArgumentHelp("Recharge when the balance drops below this.", valueName: "amount"))
    var threshold: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Top the balance up to this.", valueName: "amount"))
    var target: String?

    @Option(name: .customLong("max-spend"), parsing: .unconditional, help: ArgumentHelp("At most this much recharged per calendar month.", valueName: "amount"))
    var maxSpend: String?

    @Option(name: .customLong("expiration-period"), help: ArgumentHelp("Recharge grants expire after DAY, WEEK, MONTH or YEAR.", valueName: "period"), transform: Checked.period)
    var expirationPeriod: String?

    @Flag(name: .customLong("no-max-spend"), help: "Remove the monthly limit.")
    var noMaxSpend = false

    @Flag(name: .customLong("no-expiration"), help: "Recharge grants no longer expire.")
    var noExpiration = false

    var changes: Bool {
        enable || disable || threshold != nil || target != nil || maxSpend != nil || expirationPeriod != nil || noMaxSpend || noExpiration
    }

    func validate() throws {
        if enable && disable { throw ValidationError("give --enable or --disable, not both.") }
        if noMaxSpend && maxSpend != nil { throw ValidationError("give --max-spend or --no-max-spend, not both.") }
        if noExpiration && expirationPeriod != nil { throw ValidationError("give --expiration-period or --no-expiration, not both.") }
        if let threshold { try Checked.amount(threshold, "--threshold") }
        if let target { try Checked.amount(target, "--target", positive: true) }
        if let maxSpend { try Checked.amount(maxSpend, "--max-spend", positive: true) }
    }

    func run() throws {
        let key: JSONObject = ["customerId": .string(customerId), "currencyId": .string(currencyId)]
        let context = TallyCommandContext(global)
        try context.run { connection in
            let current = try connection.call("getAutoRecharge", key)
            guard changes else {
                context.output(current) { Self.render(current) }
                return
            }
            let configured = current["configured"] != false && current["thresholdValue"] != nil
            var params = key
            params["isEnabled"] = .bool(enable ? true : disable ? false : (configured ? current["isEnabled"] == true : true))
            guard let thresholdValue = threshold.map({ JSONValue.string($0) }) ?? (configured ? current["thresholdValue"] : nil),
                  let targetValue = target.map({ JSONValue.string($0) }) ?? (configured ? current["targetBalance"] : nil)
            else {
                Console.error("error: auto-recharge is not configured for \(customerId)/\(currencyId) yet: give --threshold and --target.")
                throw ExitCode(64)
            }
            params["thresholdValue"] = thresholdValue
            params["targetBalance"] = targetValue
            // null clears a field; left out, the daemon keeps it.
            if noMaxSpend { params["maxSpendLimit"] = .null } else if let maxSpend { params["maxSpendLimit"] = .string(maxSpend) }
            if noExpiration {
                params["grantExpirationPeriod"] = .null
            } else if let expirationPeriod {
                params["grantExpirationPeriod"] = .string(expirationPeriod.uppercased())
            }
            let result = try connection.call("setAutoRecharge", params)
            context.output(result) { Self.render(result) }
        }
    }

    static func render(_ config: JSONValue) -> String {
        if config["configured"] == false {
            return "auto-recharge is not configured for \(Display.cell(config["customerId"]))/\(Display.cell(config["currencyId"]))"
        }
        return TableFormatter.keyValue(Display.fields(
            config.objectValue ?? [:],
            leading: ["customerId", "currencyId", "isEnabled", "thresholdValue", "targetBalance", "maxSpendLimit", "grantExpirationPeriod"]))
    }
}
