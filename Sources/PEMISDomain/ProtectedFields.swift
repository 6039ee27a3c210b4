/// The fields of a child's record kept sealed at rest (issue 13, "Encryption at rest"): the ID
/// number, health, and the guardians' phones. One list, used by every place that stores a
/// child's record or the history of its fields, so no path stores one of them in the clear.
extension ChildRecord {
  /// The record with each protected field passed through `transform` (sealing or opening), which
  /// is told the field's name as the history names it.
  public func mappingProtectedFields(_ transform: (_ field: String, _ value: String) throws -> String) rethrows -> ChildRecord {
    var copy = self
    copy.idDocumentNumber = try transform("idDocumentNumber", idDocumentNumber)
    copy.health = try transform("health", health)
    for i in copy.guardians.indices {
      copy.guardians[i].phone = try transform("guardians[\(i)].phone", guardians[i].phone)
    }
    return copy
  }

  /// Whether a field, as the history names it ("health", "guardians[0].phone"), is protected.
  /// The history keeps ID numbers masked, so those are not sealed there.
  public static func isProtectedHistoryField(_ field: String) -> Bool {
    field == "health" || (field.hasPrefix("guardians[") && field.hasSuffix("].phone"))
  }
}
