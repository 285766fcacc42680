/*
 * A small JSON reader for the fake NVML library: parses a whole text (modified in place: strings
 * are unescaped where they stand) into an array of nodes linked as trees. Enough for the state
 * file format in fake_nvml.c; no external library.
 */
#ifndef HEADROOM_JSON_READER_H
#define HEADROOM_JSON_READER_H

#include <stddef.h>

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct {
    int type, child, next;  /* child: first element or member; next: the following sibling */
    const char *key;        /* the member name, inside an object */
    const char *str;
    double num;
} jnode;

typedef struct {
    jnode *nodes;
    int count, cap;
    char *p, *end;          /* the parse position and the end of the text */
    const char *err;        /* why parsing stopped, or NULL */
} jparser;

/* Parses text[0..len) (NUL-terminated at text[len]); returns 1 when it is one JSON object,
 * else 0 with j->err set and j->p at the problem. j must be zeroed; json_free releases it. */
int json_parse(jparser *j, char *text, size_t len);
void json_free(jparser *j);

/* Node lookups; every one accepts -1 (absent) and answers absent in turn. */
int json_get(const jparser *j, int object, const char *key);
int json_first(const jparser *j, int array);
int json_is_num(const jparser *j, int n);
double json_num(const jparser *j, int n, double fallback);
const char *json_str(const jparser *j, int n, const char *fallback);

#endif
