namespace VSwitch;

/// <summary>
/// An operator-facing error: the message is one complete sentence saying what is wrong and where,
/// printed as is by vswitchd (no stack trace). Anything else escaping is a bug.
/// </summary>
public class VSwitchException : Exception
{
    public VSwitchException(string message) : base(message) { }

    public VSwitchException(string message, Exception inner) : base(message, inner) { }

    public VSwitchException() { }
}
