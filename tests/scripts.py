"""Reusable LLM scripts: what a first-time caller and a returning caller say and do."""

from memory_agent.scripted_llm import Call, Say

FIRST_CALL_STEPS = [
    Say("Welcome to Bella Vista! May I have your name?"),
    Call("save_customer_name", {"name": "Maria"}),
    Say("Lovely to meet you, Maria. What can I get you?"),
    Call("transfer_to_order_taker"),
    Say("What would you like today?"),
    (
        Call("add_to_order", {"item": "margherita", "quantity": 2, "modifications": ["extra basil"]}),
        Call("add_to_order", {"item": "Tiramisu"}),
    ),
    Say("Two Margherita Pizzas with extra basil and a Tiramisu: $36.50. Shall I place it?"),
    Call("confirm_order"),
    Say("Your order is placed and will be ready in 25 minutes."),
    Call("transfer_to_feedback"),
    Say("How would you rate your experience from 1 to 5?"),
    Call("record_feedback", {"rating": 2, "comment": "the pizza was cold last week"}),
    Say("I'm sorry to hear that. Thank you, goodbye!"),
]
FIRST_CALL_LINES = [
    "Hi, I'm Maria",
    "I'd like to order",
    "Two margheritas with extra basil and a tiramisu",
    "Yes please",
    "That's all",
    "Two. The pizza was cold last week",
]

RETURN_CALL_STEPS = [
    Say("Welcome back, Maria! Sorry about the cold pizza last time. The same as last time?"),
    Call("transfer_to_order_taker"),
    Say("Shall I put in the same as last time?"),
    Call("reorder_last_order"),
    Say("Two Margherita Pizzas with extra basil and a Tiramisu: $36.50. Shall I place it?"),
    Call("confirm_order"),
    Say("Placed!"),
]
RETURN_CALL_LINES = ["Yes, the same please", "Yes, the same as last time", "Yes"]
