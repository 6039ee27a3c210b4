import ArgumentParser

/// `pemis`: the client tool for kindergarten staff and district consoles. Later issues add
/// command groups (login, kindergarten, child, transfer, district) next to these.
@main
struct PEMISCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "pemis",
    abstract: "Talk to a PEMIS server: kindergarten and district consoles.",
    version: "pemis 0.1.0",
    subcommands: [
      HealthCommand.self, LoginCommand.self, LogoutCommand.self, WhoAmICommand.self, PasswordCommand.self,
      OnboardingCommand.self, AccountCommand.self, KindergartenCommand.self, DataCommand.self, ChildCommand.self,
      DeadlineCommand.self, TransferCommand.self, DuplicatesCommand.self, DistrictCommand.self,
      AuditQueryCommand.self, ExportCommand.self,
      EchoCommand.self,
    ])
}
