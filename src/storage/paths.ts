/** Key helpers for '/'-separated storage keys. */

/** Joins '/'-separated key parts, ignoring empty ones. */
export function joinKey(...parts: string[]): string {
  return parts.filter((p) => p.length > 0).join('/');
}

export function parentKey(key: string): string {
  const i = key.lastIndexOf('/');
  return i < 0 ? '' : key.slice(0, i);
}

export function baseName(key: string): string {
  const i = key.lastIndexOf('/');
  return i < 0 ? key : key.slice(i + 1);
}

/** `child` relative to `dir`, or null when it is not below it. */
export function relativeTo(dir: string, child: string): string | null {
  if (dir === '') return child;
  return child.startsWith(dir + '/') ? child.slice(dir.length + 1) : null;
}
