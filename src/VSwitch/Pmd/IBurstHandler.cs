// IBurstHandler.cs - what a forwarding mode does with one received burst.
using VSwitch.Ports;

namespace VSwitch.Pmd;

/// <summary>
/// A forwarding mode (l2fwd, the flow pipeline, ...). Implementations are structs passed as a
/// generic type argument to <see cref="PmdLoop{TIo, THandler}"/>, so Handle is a direct, inlinable
/// call. Handle must put every one of the <c>n</c> mbufs either into a tx buffer
/// (<see cref="PmdState.Enqueue"/>) or into the drop list (<see cref="PmdState.Drop"/>); it must not
/// allocate, lock, or block.
/// </summary>
public unsafe interface IBurstHandler
{
    void Handle(PmdState state, in RxQueueRef rx, nint* mbufs, int n);
}
