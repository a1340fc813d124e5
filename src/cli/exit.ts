/** The exit code a command asks for; main() returns it (0 unless set). */
let code = 0;

export function setExit(c: number): void {
  code = c;
}

export function takeExit(): number {
  const c = code;
  code = 0;
  return c;
}
