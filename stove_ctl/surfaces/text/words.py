"""The words the grammar knows, each with its part: an action, a place, a marker that
ties a time to the command, a negation, a filler or a politeness form.

Everything in an utterance must be one of these, a burner's name, or a time or
duration (stove_ctl/surfaces/text/times.py). Multi-word entries win over their parts (the
scanner takes the longest match), so "关小" is never "关" and "开着吗" never "开".
"""

from __future__ import annotations

# Words for the usual burner ids, so "左灶" finds a burner called "left".
SIDE_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("左边", "左侧", "左灶", "左眼", "左", "left"),
    "right": ("右边", "右侧", "右灶", "右眼", "右", "right"),
    "front": ("前面", "前边", "前灶", "前", "front"),
    "back": ("后面", "后边", "后灶", "back", "rear"),
    "middle": ("中间", "中灶", "middle", "centre", "center"),
}
ALL_WORDS = ("全部", "所有", "两个", "都", "everything", "every burner", "all", "both")
STOVE_WORDS = (
    "燃气灶",
    "煤气灶",
    "灶台",
    "炉灶",
    "灶",
    "火",
    "燃气",
    "煤气",
    "stove",
    "hob",
    "burner",
    "burners",
    "gas",
    "cooker",
    "fire",
    "flame",
    "flames",
)

# Actions. "on" and "down" are understood only to be refused: stove-ctl cannot
# light a burner, and turning a flame down is not a shutoff.
ACTION_WORDS: dict[str, tuple[str, ...]] = {
    "shutoff": ("关", "关掉", "关闭", "关上", "关了", "熄", "熄灭", "灭",
                "灭掉", "kill", "stop", "shut down", "extinguish"),
    "cancel": ("取消", "撤销", "删除", "删掉", "cancel", "stop the timer", "remove the timer",
               "delete the timer", "clear the timer"),
    "lock": ("锁", "锁住", "锁定", "锁上", "上锁", "锁起来", "lock"),
    "unlock": ("解锁", "解除锁定", "解开锁", "开锁", "取消锁定", "unlock",
               "release the lock", "remove the lock", "lift the lock"),
    "extend": ("延长", "推迟", "延后", "extend", "postpone", "push back", "delay"),
    "snooze": ("暂缓", "snooze", "hold off"),
    "status": ("状态", "怎么样", "开着吗", "还开着吗", "关了吗", "灭了吗", "status", "is", "are"),
    "set": ("设", "设置", "设定", "设个", "定个", "set", "start"),
    "on": ("开", "打开", "点火", "点燃", "开启", "开大", "调大", "light", "ignite",
           "relight"),
    "down": ("关小", "调小", "拧小", "小火", "lower", "reduce"),
}  # fmt: skip
# English verbs whose direction comes from a particle ("turn the left burner off").
TURN_VERBS = ("turn", "switch", "shut", "put")
PARTICLES = {"off": "shutoff", "on": "on", "down": "down", "up": "on", "out": "shutoff"}

TIMER_WORDS = ("定时", "定时器", "计时", "计时器", "倒计时", "timer", "timers", "countdown")
RULE_WORDS = ("规则", "提醒", "警告", "rule", "rules", "warning", "reminder")

# Markers that tie a duration or a time of day to the command.
DELAY_BEFORE = ("过", "再过", "等", "再等", "等待", "in", "after", "within")
DELAY_AFTER = ("后", "以后", "之后", "过后", "内", "之内", "以内", "from now", "later")
BY_WORDS = ("by",)
FOR_WORDS = ("for",)
CLOCK_BEFORE = ("在",)
CLOCK_AFTER = ("的时候", "整")

NEGATIONS = ("不", "不要", "别", "不用", "先别", "甭", "不必", "勿", "没", "没有", "不需要",
             "用不着", "算了", "don't", "dont", "do not", "does not", "doesn't", "didn't",
             "not", "no", "never", "never mind", "nevermind", "no need to", "no need",
             "don't bother", "won't", "shouldn't", "without", "nope", "undo")  # fmt: skip

FILLERS = ("把", "的", "了", "吧", "啊", "呀", "呢", "哦", "嗯", "给", "我", "你", "一下", "下",
           "和", "跟", "与", "也", "再", "就", "马上", "立刻", "立即", "现在", "赶紧", "赶快",
           "快点", "快", "那个", "这个", "然后", "个", "掉", "它", "啦", "家里",
           "的话", "今天",
           "the", "a", "an", "my", "it", "its", "and", "of", "to", "now", "right now",
           "immediately", "straight away", "just", "then", "too", "also", "again", "that",
           "this", "please", "hey", "ok", "okay", "with")  # fmt: skip
POLITE = ("请", "麻烦", "麻烦你", "劳驾", "谢谢", "多谢", "帮我", "帮忙", "小爱同学", "小爱",
          "好吗", "可以吗", "行吗", "好不好", "please", "thanks", "thank you", "could you",
          "can you", "would you", "will you", "kindly", "for me", "hey google",
          "alexa")  # fmt: skip
