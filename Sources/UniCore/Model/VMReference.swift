/// What callers name a VM by: its name, its full id, or a unique id prefix.
public enum VMReference {
    /// Checks that `reference` can name a VM at all; the one check of the
    /// CLI's client and the API's routes.
    /// - Throws: ``UniError`` (`invalidArgument`) for an empty reference,
    ///   which would otherwise turn `GET /v1/vms/{ref}` into the list route.
    public static func check(_ reference: String) throws {
        guard !reference.isEmpty else {
            throw UniError.invalid("invalid vm reference '\(reference)': give a name, id or id prefix")
        }
    }
}
