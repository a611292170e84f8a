// IBurstHandler.cs - what a forwarding mode does with one received burst.
using VSwitch.Ports;

namespace VSwitch.Pmd;

/// <summary>
/// A forwarding mode (l2fwd, the flow pipeline, ...). Implementations are structs passed as a
/// generic type argument to <see cref="PmdLoop{TIo, THandler}"/>, so Handle is a direct, inlinable
/// call. Handle must put every one of the <c>n</c> mbufs either into a tx buffer
/// (<see cref="PmdState.Enqueue"/>) or into the drop list (<see cref="PmdState.Drop"/>), or return
/// one datapath port for the whole burst; it must not allocate, lock, or block.
/// </summary>
public unsafe interface IBurstHandler
{
    /// <summary>
    /// Handles <paramref name="n"/> received mbufs. Returns -1 when it placed every mbuf itself, or
    /// a datapath port number to send the whole burst, in order, to that port: the loop then
    /// transmits straight from the rx array when that port has nothing buffered (no copy).
    /// </summary>
    int Handle(PmdState state, in RxQueueRef rx, nint* mbufs, int n);

    /// <summary>
    /// Called once at the start of every polling round, busy or idle: the place to notice a new
    /// table version (the loop then reports the round's epoch) and to do a little housekeeping.
    /// <paramref name="now"/> is the TSC.
    /// </summary>
    void Round(PmdState state, ulong now);
}
