import ArgumentParser

/// `presence`: the registry's HTTP service and operator commands.
@main
struct PresenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "presence",
        abstract: "Is this socket connected right now, and on which node?",
        subcommands: [ServeCommand.self, SweepCommand.self, NodesCommand.self, LookupCommand.self],
        defaultSubcommand: ServeCommand.self)
}
