/* The JSON reader declared in json_reader.h. */
#include "json_reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32

static int j_new(jparser *j, int type) {
    if (j->count == j->cap) {
        int cap = j->cap ? j->cap * 2 : 64;
        jnode *grown = realloc(j->nodes, (size_t)cap * sizeof(jnode));
        if (!grown) { j->err = "out of memory"; return -1; }
        j->nodes = grown;
        j->cap = cap;
    }
    jnode *n = &j->nodes[j->count];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->child = n->next = -1;
    return j->count++;
}

static void j_space(jparser *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int j_hex(const char *s) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Unescapes the string starting after the opening quote, in place; returns its start or NULL. */
static char *j_string(jparser *j) {
    char *out = j->p, *start = j->p;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if ((unsigned char)c < 0x20) { j->err = "control character in string"; return NULL; }
        if (c != '\\') { *out++ = c; continue; }
        if (j->p >= j->end) break;
        c = *j->p++;
        switch (c) {
        case '"': case '\\': case '/': *out++ = c; break;
        case 'b': *out++ = '\b'; break;
        case 'f': *out++ = '\f'; break;
        case 'n': *out++ = '\n'; break;
        case 'r': *out++ = '\r'; break;
        case 't': *out++ = '\t'; break;
        case 'u': {
            int v = j->end - j->p >= 4 ? j_hex(j->p) : -1;
            if (v < 0) { j->err = "bad \\u escape"; return NULL; }
            j->p += 4;
            /* Names and UUIDs are ASCII; anything else becomes '?' rather than bad UTF-8. */
            *out++ = v < 0x80 ? (char)v : '?';
            break;
        }
        default: j->err = "bad escape"; return NULL;
        }
    }
    if (j->p >= j->end) { j->err = "unterminated string"; return NULL; }
    j->p++; /* the closing quote; `out` never passes it, so terminating here is safe */
    *out = '\0';
    return start;
}

static int j_value(jparser *j, int depth);

static int j_container(jparser *j, int depth, int type, char close) {
    int self = j_new(j, type), last = -1;
    if (self < 0) return -1;
    j->p++;
    j_space(j);
    if (j->p < j->end && *j->p == close) { j->p++; return self; }
    for (;;) {
        const char *key = NULL;
        j_space(j);
        if (type == J_OBJ) {
            if (j->p >= j->end || *j->p != '"') { j->err = "expected a key"; return -1; }
            j->p++;
            if (!(key = j_string(j))) return -1;
            j_space(j);
            if (j->p >= j->end || *j->p != ':') { j->err = "expected ':'"; return -1; }
            j->p++;
        }
        int child = j_value(j, depth + 1);
        if (child < 0) return -1;
        j->nodes[child].key = key;
        if (last < 0) j->nodes[self].child = child; else j->nodes[last].next = child;
        last = child;
        j_space(j);
        if (j->p < j->end && *j->p == ',') { j->p++; continue; }
        if (j->p < j->end && *j->p == close) { j->p++; return self; }
        j->err = type == J_OBJ ? "expected ',' or '}'" : "expected ',' or ']'";
        return -1;
    }
}

static int j_literal(jparser *j, const char *word, int type, double num) {
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) {
        j->err = "unexpected character";
        return -1;
    }
    j->p += n;
    int self = j_new(j, type);
    if (self >= 0) j->nodes[self].num = num;
    return self;
}

static int j_value(jparser *j, int depth) {
    if (depth > MAX_DEPTH) { j->err = "nested too deeply"; return -1; }
    j_space(j);
    if (j->p >= j->end) { j->err = "unexpected end"; return -1; }
    char c = *j->p;
    if (c == '{') return j_container(j, depth, J_OBJ, '}');
    if (c == '[') return j_container(j, depth, J_ARR, ']');
    if (c == '"') {
        j->p++;
        char *s = j_string(j);
        int self = s ? j_new(j, J_STR) : -1;
        if (self >= 0) j->nodes[self].str = s;
        return self;
    }
    if (c == 't') return j_literal(j, "true", J_BOOL, 1);
    if (c == 'f') return j_literal(j, "false", J_BOOL, 0);
    if (c == 'n') return j_literal(j, "null", J_NULL, 0);
    char *after;
    errno = 0;
    double num = strtod(j->p, &after); /* the buffer is NUL-terminated, so strtod stops there */
    if (after == j->p || errno == ERANGE) { j->err = "bad number"; return -1; }
    j->p = after;
    int self = j_new(j, J_NUM);
    if (self >= 0) j->nodes[self].num = num;
    return self;
}

int json_parse(jparser *j, char *text, size_t len) {
    j->p = text;
    j->end = text + len;
    int root = j_value(j, 0);
    j_space(j);
    if (root == 0 && !j->err && j->p != j->end) j->err = "trailing characters";
    if (root == 0 && !j->err && j->nodes[0].type != J_OBJ) j->err = "the top level must be an object";
    return root == 0 && !j->err;
}

void json_free(jparser *j) {
    free(j->nodes);
    memset(j, 0, sizeof *j);
}

int json_get(const jparser *j, int object, const char *key) {
    if (object < 0 || j->nodes[object].type != J_OBJ) return -1;
    for (int c = j->nodes[object].child; c >= 0; c = j->nodes[c].next)
        if (strcmp(j->nodes[c].key, key) == 0) return c;
    return -1;
}

int json_first(const jparser *j, int array) {
    return array >= 0 && j->nodes[array].type == J_ARR ? j->nodes[array].child : -1;
}

int json_is_num(const jparser *j, int n) { return n >= 0 && j->nodes[n].type == J_NUM; }

double json_num(const jparser *j, int n, double fallback) {
    return json_is_num(j, n) ? j->nodes[n].num : fallback;
}

const char *json_str(const jparser *j, int n, const char *fallback) {
    return n >= 0 && j->nodes[n].type == J_STR ? j->nodes[n].str : fallback;
}
