/** The error a call is refused with (its stable code and message); a call that is not refused fails the test. */
export async function refusal(run: () => Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await run();
  } catch (e) {
    return e as { code?: string; message: string };
  }
  throw new Error('not refused');
}
